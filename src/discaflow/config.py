"""Configuration checking: the JSON schema in ``workflow/schemas/config.schema.yaml``, with
defaults filled in and the first problem reported as one line naming the key."""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import jsonschema
import yaml

from discaflow.errors import InputError

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


def _with_defaults(validator_class):
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def _key(path) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def _message(error: jsonschema.ValidationError) -> str:
    key = _key(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        hint = f"; allowed keys: {', '.join(allowed)}" if allowed else ""
        return f"config key '{key}': unknown key {', '.join(repr(e) for e in extra)}{hint}"
    if error.validator == "oneOf" and all(set(sub) == {"required"} for sub in error.validator_value):
        keys = [k for sub in error.validator_value for k in sub["required"]]
        return f"config key '{key}': give exactly one of {', '.join(keys)} (see config/README.md)"
    if error.validator == "required":
        return f"config key '{key}': {error.message}; add it (see config/README.md)"
    if error.validator == "propertyNames":
        return f"config key '{key}': name {error.instance!r} may hold only letters, digits, '_', '.', '-'"
    return f"config key '{key}': {error.message} (see config/README.md)"


STAGES = ("pick", "extract", "disca", "average", "embed", "export")  # sections a dataset may override


def load_schema(schema_path: str | Path = SCHEMA_PATH) -> dict:
    """The configuration schema, its ``disca`` section generated from DiscaConfig and every
    ``<stage>_override`` from its stage section (same keys and constraints, no defaults)."""
    return copy.deepcopy(_schema(str(schema_path)))


@functools.lru_cache(maxsize=4)
def _schema(schema_path: str) -> dict:
    """load_schema's result, read and generated once per process (the CLI reads defaults from it)."""
    from discaflow.disca.config import json_schema

    schema = yaml.safe_load(Path(schema_path).read_text())
    defs = schema["$defs"]
    defs["disca"] = json_schema(defaults=True)
    for stage in STAGES:
        section = defs[stage]
        defs[f"{stage}_override"] = {**section, "properties": {k: {kk: vv for kk, vv in v.items() if kk != "default"}
                                                               for k, v in section["properties"].items()}}
    return schema


def schema_section(stage: str, *sub: str) -> dict:
    """The schema of a section (``pick``; ``simulation``, ``imaging``; …), read-only."""
    section = _schema(str(SCHEMA_PATH))["$defs"][stage]
    for name in sub:
        section = section["properties"][name]
    return section


def stage_defaults(stage: str, *sub: str) -> dict:
    """The defaults of a section (``average``, ``pick``, ``simulation`` + ``imaging``, …): the schema is
    where they are written; the command line and the Python entry points read them here."""
    return {k: copy.deepcopy(v["default"]) for k, v in schema_section(stage, *sub)["properties"].items() if "default" in v}


def job_resources(config: dict, rule: str) -> dict:
    """What a job of ``rule`` asks for (threads, mem_mb, runtime in minutes, gpu), from a checked config:
    the rule's own entry, then its built-in defaults, then ``resources.default``, key by key."""
    builtin = _schema(str(SCHEMA_PATH))["$defs"]["resources"]["properties"]
    if rule not in builtin or rule == "default":
        raise KeyError(f"no resources entry for rule {rule!r} in the configuration schema")
    given = config.get("resources", {})
    return {**builtin["default"]["default"], **given.get("default", {}),
            **builtin[rule].get("default", {}), **given.get(rule, {})}


def check_config(config: dict, schema_path: str | Path = SCHEMA_PATH) -> dict:
    """Validate ``config`` in place (defaults filled in) and return it.

    Raises :class:`InputError` with one line naming the first offending key.
    """
    schema = load_schema(schema_path)
    cls = _with_defaults(jsonschema.validators.validator_for(schema))
    errors = sorted(cls(schema).iter_errors(config), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if errors:
        best = jsonschema.exceptions.best_match(errors)
        raise InputError(_message(best))
    return config


class _StrictLoader(yaml.SafeLoader):
    """A YAML loader that refuses duplicate keys (plain YAML keeps the last one silently)."""


def _construct_mapping(loader, node, deep=False):
    seen = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise InputError(f"{getattr(loader, 'name', 'config')}: key {key!r} appears twice (lines "
                             f"{seen[key] + 1} and {key_node.start_mark.line + 1}); names of datasets and keys must be unique")
        seen[key] = key_node.start_mark.line
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def check_yaml_file(path: str | Path) -> None:
    """Raise :class:`InputError` for a YAML file that is unreadable or repeats a key."""
    path = Path(path)
    try:
        with open(path) as fh:
            loader = _StrictLoader(fh)
            loader.name = str(path)
            try:
                loader.get_single_data()
            finally:
                loader.dispose()
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None


def load_config(path: str | Path) -> dict:
    """Read a YAML configuration file and check it."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: configuration file not found")
    check_yaml_file(path)
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    return check_config(config)


if __name__ == "__main__":  # python -m discaflow.config --disca-table: config/README.md's disca table
    import sys

    from discaflow.disca.config import markdown_table

    if sys.argv[1:] != ["--disca-table"]:
        sys.exit("usage: python -m discaflow.config --disca-table")
    print(markdown_table(), end="")
