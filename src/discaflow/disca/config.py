"""DISCA's parameters: the one place their defaults, constraints and help are written.

The configuration schema's ``disca`` sections (discaflow.config) and the ``discaflow disca`` options
(discaflow.cli) are generated from :class:`DiscaConfig`; a config is validated against the same JSON
schema fragment wherever it is made (YAML, command line, Python).
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, field, fields

from discaflow.errors import InputError


def _key(default, schema: dict, help: str, **kw):
    """A DiscaConfig field: its default, its JSON-schema constraints and a one-line help."""
    if isinstance(default, list):
        value = list(default)
        return field(default_factory=lambda: list(value), metadata={"schema": schema, "help": help, **kw})
    return field(default=default, metadata={"schema": schema, "help": help, **kw})


def _default(f):
    """A DiscaConfig field's default value."""
    return f.default_factory() if callable(f.default_factory) else f.default


DESIGNS = ("discaflow", "reference")
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")


@dataclass(frozen=True, kw_only=True)
class DiscaConfig:
    """Parameters of a DISCA run (config section ``disca``; docs/method.md explains each choice)."""

    # discaflow: radial warm-up, split/merge tests, converged result; reference: the published E-step
    design: str = _key("discaflow", {"enum": list(DESIGNS)},
                       "discaflow (radial warm-up, split/merge tests) or reference (the published E-step)")
    k_candidates: list = _key(list(range(2, 21)), {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 1},
                              "candidate numbers of clusters (design reference: always 5, 10, 20)")
    warmup_iterations: int = _key(3, {"type": "integer", "minimum": 0},
                                  "iterations trained on the radial descriptors' clustering (design discaflow)")
    max_iterations: int = _key(20, {"type": "integer", "minimum": 1, "maximum": 1000}, "iterations at most")
    agreement_stop: float = _key(0.999, {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                                 "converged when more than this fraction of labels repeat")
    blocks: int = _key(10, {"type": "integer", "minimum": 1, "maximum": 20}, "YOPO convolution blocks (paper 10)")
    first_filters: int = _key(64, {"type": "integer", "minimum": 1}, "filters of the first block (paper 64)")
    filter_step: int = _key(16, {"type": "integer", "minimum": 0}, "filters added per block (paper 16)")
    feature_dim: int = _key(1024, {"type": "integer", "minimum": 2}, "feature vector length (paper 1024)")
    pca_components: int = _key(16, {"type": "integer", "minimum": 1}, "PCA dimensions of the E-step")
    learning_rate: float = _key(1e-3, {"type": "number", "exclusiveMinimum": 0},
                                "Nadam learning rate of the M-step (paper 1e-5; docs/method.md)")
    epochs_per_iteration: int = _key(1, {"type": "integer", "minimum": 1}, "training epochs per M-step")
    rotation_copies: int = _key(1, {"type": "integer", "minimum": 0}, "randomly rotated copies of each subtomogram per epoch")
    batch_size: int = _key(64, {"type": "integer", "minimum": 1}, "training batch size")
    train_per_cluster: int = _key(1000, {"type": "integer", "minimum": 0},
                                  "subtomograms of each cluster an M-step epoch trains on, drawn anew each epoch (0: all)")
    fit_sample: int = _key(5000, {"type": "integer", "minimum": 0},
                           "subtomograms the E-step's mixtures and split/merge tests are fitted to, all then assigned (0: all)")
    batchnorm_samples: int = _key(1024, {"type": "integer", "minimum": 0},
                                  "subtomograms that recompute BatchNorm statistics after each M-step (0: off, as the paper)")
    precision: str = _key("auto", {"enum": list(PRECISIONS)},
                          "auto: mixed_float16 on a GPU, mixed_bfloat16 on a CPU with bfloat16, else float32")
    seed: int = _key(0, {"type": "integer", "minimum": 0}, "random seed (same seed, same labels)")
    deterministic: bool = _key(False, {"type": "boolean"}, "bit-identical reruns on a CPU (float32, oneDNN off: slower)")
    n_jobs: int = _key(-1, {"type": "integer", "minimum": -1, "not": {"const": 0}},
                       "processes for the mixture fits (-1: every CPU of the job); never changes the result", neutral=True)

    def __post_init__(self):
        check({f.name: getattr(self, f.name) for f in fields(self)}, "disca")
        object.__setattr__(self, "k_candidates", sorted({int(k) for k in self.k_candidates}))

    def identity(self) -> dict:
        """The parameters that decide the result (a state directory's identity)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.metadata.get("neutral")}

    def replace(self, **changes) -> "DiscaConfig":
        return DiscaConfig(**{**asdict(self), **changes})


# The published design (bench/table1.py's comparator): its E-step and its training settings.
PUBLISHED = {"design": "reference", "learning_rate": 1e-5, "batchnorm_samples": 0, "train_per_cluster": 0,
             "fit_sample": 0}

# Keys of the workflow's disca section that are not DiscaConfig's (how the rule runs it).
WORKFLOW_KEYS = {
    "iterations_per_job": ({"type": "integer", "minimum": 1}, 5, "iterations per SLURM job (a chain of resumable jobs)"),
    "init_from": ({"type": ["string", "null"]}, None, "fine-tune from this model bundle's network"),
}


def json_schema(defaults: bool = True, workflow: bool = True) -> dict:
    """The JSON schema of a ``disca`` section: with ``defaults`` each key's default (the top-level
    section), without (a dataset's override); with ``workflow`` the workflow-only keys too."""
    props = {}
    for f in fields(DiscaConfig):
        props[f.name] = dict(f.metadata["schema"])
        if defaults:
            props[f.name]["default"] = _default(f)
    if workflow:
        for name, (schema, default, _) in WORKFLOW_KEYS.items():
            props[name] = {**schema, **({"default": default} if defaults else {})}
    return {"type": "object", "additionalProperties": False, "properties": props}


def check(settings: dict, where: str = "disca") -> None:
    """Raise InputError naming the first key of ``settings`` that breaks its constraint."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(json_schema(defaults=False, workflow=False))
    errors = sorted(validator.iter_errors(settings), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        e = jsonschema.exceptions.best_match(errors)
        raise InputError(f"{'.'.join([where, *map(str, e.absolute_path)])}: {e.message}")


def from_settings(settings: dict) -> DiscaConfig:
    """The DiscaConfig of a workflow ``disca`` section (workflow-only keys dropped)."""
    return DiscaConfig(**{k: v for k, v in settings.items() if k not in WORKFLOW_KEYS})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One ``--option`` per DiscaConfig field (default None: the field's default applies)."""
    g = parser.add_argument_group("DISCA parameters (config section disca; defaults in brackets)")
    for f in fields(DiscaConfig):
        schema, default = f.metadata["schema"], _default(f)
        shown = " ".join(map(str, default)) if isinstance(default, list) else default
        kw = {"default": None, "dest": f"disca_{f.name}", "help": f"{f.metadata['help']} [{shown}]"}
        if schema.get("type") == "boolean":
            kw["action"] = argparse.BooleanOptionalAction
        elif "enum" in schema:
            kw["choices"] = schema["enum"]
        elif schema.get("type") == "array":
            kw.update(nargs="+", type=int, metavar="K")
        else:
            kw["type"] = {"integer": int, "number": float}[schema["type"]]
        g.add_argument("--" + f.name.replace("_", "-"), **kw)


def from_arguments(args: argparse.Namespace) -> DiscaConfig:
    """The DiscaConfig of the options given (others keep their defaults)."""
    given = {f.name: getattr(args, f"disca_{f.name}") for f in fields(DiscaConfig)}
    return DiscaConfig(**{k: v for k, v in given.items() if v is not None})


def _type_text(schema: dict) -> str:
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in schema["enum"])
    t = schema["type"]
    if t == "array":
        return "list of integers ≥ 1"
    if isinstance(t, list):
        return "path or null"
    words = {"integer": "integer", "number": "number", "boolean": "bool", "string": "string"}[t]
    if "minimum" in schema and "maximum" in schema:
        return f"{words} {schema['minimum']}–{schema['maximum']}"
    if "exclusiveMinimum" in schema:
        return f"{words} > {schema['exclusiveMinimum']}" + (f", ≤ {schema['maximum']}" if "maximum" in schema else "")
    if "minimum" in schema:
        return f"{words} ≥ {schema['minimum']}" + (", not 0" if "not" in schema else "")
    return words


def markdown_table() -> str:
    """The ``disca`` key table of config/README.md (``python -m discaflow.config --disca-table``)."""
    def text(v):
        if isinstance(v, list):
            return f"`[{v[0]}, …, {v[-1]}]`" if len(v) > 4 else f"`{v}`"
        return "`null`" if v is None else f"`{str(v).lower() if isinstance(v, bool) else v}`"

    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for f in fields(DiscaConfig):
        default = _default(f)
        rows.append(f"| `{f.name}` | {_type_text(f.metadata['schema'])} | {text(default)} | {f.metadata['help']} |")
    for name, (schema, default, help) in WORKFLOW_KEYS.items():
        rows.append(f"| `{name}` | {_type_text(schema)} | {text(default)} | {help} |")
    return "\n".join(rows) + "\n"
