"""DISCA: YOPO features alternating with Gaussian-mixture E-steps, checkpointed per iteration.

``config`` (parameters), ``estimator`` (:class:`Disca`, export), ``estep`` (labels and K, no
TensorFlow), ``mstep`` (training), ``rules`` (schedules, convergence, the result), ``checkpoint``
(the state directory).
"""

from discaflow.disca.config import PUBLISHED, DiscaConfig

__all__ = ["PUBLISHED", "Disca", "DiscaConfig", "Interrupted", "export_result"]


def __getattr__(name):  # the estimator imports scikit-learn: loaded on first use
    if name in ("Disca", "Interrupted", "export_result"):
        from discaflow.disca import estimator

        return getattr(estimator, name)
    raise AttributeError(name)
