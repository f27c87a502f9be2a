"""discaflow: template- and label-free structure discovery in cryo-electron tomograms (DISCA).

The public API (what the workflow's scripts and users import)::

    from discaflow import Disca, DiscaConfig, SubtomogramStore, export_result, load_bundle, predict_store
"""

__version__ = "0.1.0"

_API = {
    "Disca": "discaflow.disca.estimator", "DiscaConfig": "discaflow.disca.config", "export_result": "discaflow.disca.estimator",
    "Interrupted": "discaflow.disca.estimator", "SubtomogramStore": "discaflow.io.store",
    "load_bundle": "discaflow.bundle", "predict_store": "discaflow.bundle", "InputError": "discaflow.errors",
}
__all__ = ["__version__", *_API]


def __getattr__(name):  # imported on first use: `import discaflow` stays light (no TensorFlow, no scikit-learn)
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'discaflow' has no attribute {name!r}")
