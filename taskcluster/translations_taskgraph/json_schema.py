"""Generate a JSON Schema from a voluptuous schema.

The `train` action publishes a JSON Schema for its input (Treeherder and the Taskcluster UI render a form
from it and check the input). That schema is generated from the one voluptuous training-config schema, so
the two cannot drift apart; the action callback still validates with voluptuous itself, which also runs the
checks a JSON Schema cannot express (custom validator functions, cross-key rules).

Supported: literals, the types str/int/float/bool/None/object, dicts (Required/Optional keys with defaults,
type keys such as `str`, extra=ALLOW_EXTRA/PREVENT_EXTRA), lists, nested Schema objects and the validators
All, Any, Match, Range, Length, In. A validator function carries its own fragment in a `json_schema`
attribute; a function without one adds no constraint (voluptuous still checks it).
"""

import re
from collections.abc import Callable

from voluptuous import (
    ALLOW_EXTRA,
    REMOVE_EXTRA,
    All,
    Any,
    Coerce,
    In,
    Length,
    Marker,
    Match,
    Optional,
    Range,
    Remove,
    Required,
    Schema,
)
from voluptuous.schema_builder import UNDEFINED

TYPES = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}
DRAFT = "http://json-schema.org/draft-07/schema#"


class UnsupportedSchema(TypeError):
    """A voluptuous construct this converter does not know; better loud than a silently lax schema."""


def to_json_schema(schema, title: str | None = None) -> dict:
    """The JSON Schema (draft 7) equivalent of a voluptuous schema."""
    result = {"$schema": DRAFT}
    if title:
        result["title"] = title
    result.update(_convert(schema))
    return result


def _convert(value, extra=None) -> dict:
    if isinstance(value, Schema):
        return _convert(value.schema, extra=value.extra)
    if isinstance(value, dict):
        return _object(value, extra)
    if isinstance(value, list):
        return _array(value)
    if value is object:
        return {}
    if isinstance(value, type):
        if value in TYPES:
            return {"type": TYPES[value]}
        if issubclass(value, dict):
            return {"type": "object"}
        if issubclass(value, list | tuple):
            return {"type": "array"}
        raise UnsupportedSchema(f"no JSON Schema type for {value.__name__}")
    if value is None or isinstance(value, str | int | float | bool):
        return {"const": value}
    if isinstance(value, All):
        return _merge_all([_convert(v) for v in value.validators])
    if isinstance(value, Any):
        return _any([_convert(v) for v in value.validators])
    if isinstance(value, Match):
        pattern = value.pattern.pattern if isinstance(value.pattern, re.Pattern) else value.pattern
        return {"type": "string", "pattern": pattern}
    if isinstance(value, Range):
        return _range(value)
    if isinstance(value, Length):
        return _length(value)
    if isinstance(value, In):
        return {"enum": list(value.container)}
    if isinstance(value, Coerce):
        return {}
    if callable(value):
        return dict(getattr(value, "json_schema", {}))
    raise UnsupportedSchema(f"cannot convert {value!r} to JSON Schema")


def _object(mapping: dict, extra) -> dict:
    properties, required, additional = {}, [], []
    for key, value in mapping.items():
        if isinstance(key, Remove):
            continue
        name = key.schema if isinstance(key, Marker) else key
        if isinstance(name, str):
            prop = _convert(value)
            default = getattr(key, "default", UNDEFINED)
            if default is not UNDEFINED:
                default = default() if isinstance(default, Callable) else default
                prop = {**prop, "default": default}
            description = getattr(key, "description", None)
            if description:
                prop = {**prop, "description": description}
            properties[name] = prop
            if isinstance(key, Required) or not isinstance(key, Optional):
                required.append(name)
        elif isinstance(name, type):
            additional.append(_convert(value))
        else:
            raise UnsupportedSchema(f"cannot convert dict key {key!r} to JSON Schema")
    result = {"type": "object", "properties": properties}
    if required:
        result["required"] = required
    if additional:
        result["additionalProperties"] = additional[0] if len(additional) == 1 else _any(additional)
    elif extra in (ALLOW_EXTRA, REMOVE_EXTRA):
        result["additionalProperties"] = True
    else:
        result["additionalProperties"] = False
    return result


def _array(items: list) -> dict:
    if not items:
        return {"type": "array"}
    converted = [_convert(item) for item in items]
    return {"type": "array", "items": converted[0] if len(converted) == 1 else _any(converted)}


def _any(options: list[dict]) -> dict:
    if any(option == {} for option in options):
        return {}
    if all(set(option) == {"const"} for option in options):
        return {"enum": [option["const"] for option in options]}
    return {"anyOf": options}


def _merge_all(parts: list[dict]) -> dict:
    """All(a, b, ...): one flat schema where the parts do not collide, allOf otherwise."""
    merged: dict = {}
    rest = []
    for part in parts:
        if set(part) & set(merged) - {"type"} or (
            "type" in part and "type" in merged and part["type"] != merged["type"]
        ):
            rest.append(part)
        else:
            merged.update(part)
    # Range on an int: the type fragment may have come from the Range; keep the most specific one.
    return {**merged, "allOf": rest} if rest else merged


def _range(value: Range) -> dict:
    result = {}
    if value.min is not None:
        result["minimum" if value.min_included else "exclusiveMinimum"] = value.min
    if value.max is not None:
        result["maximum" if value.max_included else "exclusiveMaximum"] = value.max
    return result


def _length(value: Length) -> dict:
    # Length applies to strings and lists alike; the sibling type decides which keyword counts.
    result = {}
    if value.min is not None:
        result["minItems"] = value.min
        result["minLength"] = value.min
    if value.max is not None:
        result["maxItems"] = value.max
        result["maxLength"] = value.max
    return result
