"""The findings JSON schema (``findings/findings.schema.json``, JSON Schema 2020-12) and a small validator.

The validator implements the subset the schema uses — ``type`` (one or a list), ``required``, ``properties``,
``items``, ``enum``, ``minItems``/``maxItems``, ``minimum``/``maximum``, ``allOf`` and local ``$ref`` — so no extra
package is needed at run time; any full JSON-Schema validator accepts the same file.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA_PATH = Path(__file__).with_name("findings.schema.json")

_TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
}


class SchemaError(ValueError):
    """A document that does not follow the findings schema; the message gives the JSON path."""


@cache
def load_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text("utf-8"))


def _is_type(value: Any, name: str) -> bool:
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, _TYPES[name])


def _check(value: Any, schema: dict[str, Any], root: dict[str, Any], path: str, errors: list[str]) -> None:
    if "$ref" in schema:
        ref = schema["$ref"]
        node: Any = root
        for part in ref.lstrip("#/").split("/"):
            node = node[part]
        _check(value, node, root, path, errors)
        return
    for sub in schema.get("allOf", []):
        _check(value, sub, root, path, errors)
    types = schema.get("type")
    if types is not None:
        names = types if isinstance(types, list) else [types]
        if not any(_is_type(value, t) for t in names):
            errors.append(f"{path}: expected {' or '.join(names)}, got {type(value).__name__}")
            return
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{path}: {value} < minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{path}: {value} > maximum {schema['maximum']}")
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                errors.append(f"{path}: required field {key!r} is missing")
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                _check(value[key], sub, root, f"{path}.{key}", errors)
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            errors.append(f"{path}: {len(value)} items < minItems {schema['minItems']}")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(f"{path}: {len(value)} items > maxItems {schema['maxItems']}")
        if "items" in schema:
            for i, item in enumerate(value):
                _check(item, schema["items"], root, f"{path}[{i}]", errors)


def schema_errors(doc: Any) -> list[str]:
    """Every violation of the findings schema in ``doc`` (empty when valid)."""
    schema = load_schema()
    errors: list[str] = []
    _check(doc, schema, schema, "$", errors)
    return errors


def validate_findings(doc: Any) -> dict[str, Any]:
    """Return ``doc`` when it follows the schema.

    Raises:
        SchemaError: listing up to 10 violations with their JSON paths.
    """
    errors = schema_errors(doc)
    if errors:
        more = f" (+{len(errors) - 10} more)" if len(errors) > 10 else ""
        raise SchemaError("findings document does not follow the schema: " + "; ".join(errors[:10]) + more)
    return doc
