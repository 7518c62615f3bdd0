"""protocol/schema.json is generated from protocol._messages and must not go
stale; it describes every method and notification."""

from __future__ import annotations

import json

import pytest

from protocol._messages import METHODS, NOTIFICATIONS
from protocol._schema import (
    SCHEMA_PATH,
    build_schema,
    normalize_description,
    normalize_descriptions,
    render_schema,
)


def test_schema_file_is_up_to_date():
    on_disk = SCHEMA_PATH.read_text(encoding="utf-8").splitlines()
    fresh = render_schema().splitlines()
    if on_disk != fresh:
        # Name the first differing line rather than dumping a 2000-line diff.
        line = next((i for i, (a, b) in enumerate(zip(on_disk, fresh)) if a != b),
                    min(len(on_disk), len(fresh)))
        pytest.fail(f"{SCHEMA_PATH} is stale (first difference at line {line + 1}): "
                    f"protocol._messages changed since it was generated; regenerate it with "
                    f"`python -m protocol._schema` and commit the result", pytrace=False)


def test_every_method_and_notification_is_described():
    schema = build_schema()
    assert sorted(schema["methods"]) == sorted(METHODS)
    assert sorted(schema["notifications"]) == sorted(NOTIFICATIONS)
    for name, entry in schema["methods"].items():
        assert set(entry) == {"params", "result"}, name


def test_every_reference_resolves():
    schema = build_schema()
    text = json.dumps(schema)
    refs = {part.split('"')[0] for part in text.split('"$ref": "#/$defs/')[1:]}
    assert refs, "the schema holds no $ref at all"
    assert refs <= set(schema["$defs"]), f"dangling refs: {sorted(refs - set(schema['$defs']))}"


def test_params_reject_unknown_fields_in_the_schema():
    # The TypeScript client relies on this: a misspelt option is an error.
    defs = build_schema()["$defs"]
    assert defs["OptimizeParams"]["additionalProperties"] is False
    assert defs["OptimizeParams"]["properties"]["top_k"] == {"type": "integer", "minimum": 0,
                                                             "default": 10}


def _schema_with(doc: str, field_doc: str) -> dict:
    return {"$defs": {"Grid": {
        "type": "object", "title": "Grid", "description": doc,
        "properties": {
            "description": {"type": "string", "description": field_doc},  # a field named so
            "hold": {"anyOf": [{"type": "array", "items": {"type": "number", "description": field_doc}},
                               {"type": "null"}]},
        },
        "default": {"description": "  data,\n    left alone  "},
    }}}


def test_descriptions_are_the_same_whether_msgspec_indents_docstrings_or_not():
    # msgspec < 0.23 (and Python < 3.13) keep a docstring's source indentation
    # after its first line; msgspec 0.23 dedents. schema.json must not care.
    indented = ("The grid ``tp_mults x sl_mults`` (SPEC 5),\n    in grid order.\n\n"
                "    ``max_hold_hrs`` None means\n    the config's horizon.\n    ")
    dedented = ("The grid ``tp_mults x sl_mults`` (SPEC 5),\nin grid order.\n\n"
                "``max_hold_hrs`` None means\nthe config's horizon.\n")
    field_indented = "\n        maximum hold in hours,\n        > 0\n    "
    field_dedented = "maximum hold in hours,\n> 0"

    a = normalize_descriptions(_schema_with(indented, field_indented))
    b = normalize_descriptions(_schema_with(dedented, field_dedented))
    assert a == b
    grid = a["$defs"]["Grid"]
    assert grid["description"] == ("The grid ``tp_mults x sl_mults`` (SPEC 5), in grid order.\n\n"
                                   "``max_hold_hrs`` None means the config's horizon.")
    assert grid["properties"]["description"]["description"] == "maximum hold in hours, > 0"
    assert grid["properties"]["hold"]["anyOf"][0]["items"]["description"] == "maximum hold in hours, > 0"
    assert grid["default"] == {"description": "  data,\n    left alone  "}  # data, not a schema
    assert normalize_descriptions(a) == a  # idempotent


def test_normalised_description_rules():
    assert normalize_description("One line.") == "One line."
    assert normalize_description("\n\n   Leading blank lines,\n   trailing too.\n\n  ") == (
        "Leading blank lines, trailing too.")
    assert normalize_description("First.\n\n\n    Second,\n\twrapped.\n  \n    Third.") == (
        "First.\n\nSecond, wrapped.\n\nThird.")


def test_every_description_in_the_schema_is_normalised():
    found = []

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "description" and isinstance(value, str):
                    found.append(value)
                elif key != "default":
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(build_schema())
    assert found
    for text in found:
        assert text == text.strip() and "\n " not in text and "\n\n\n" not in text, repr(text)
        assert all(p and "\n" not in p for p in text.split("\n\n")), repr(text)
    # A two-paragraph docstring keeps its paragraph break.
    assert build_schema()["$defs"]["ParamGrid"]["description"].count("\n\n") == 1
