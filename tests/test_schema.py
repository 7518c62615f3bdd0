"""protocol/schema.json is generated from protocol._messages and must not go
stale; it describes every method and notification."""

from __future__ import annotations

import json

import pytest

from protocol._messages import METHODS, NOTIFICATIONS
from protocol._schema import SCHEMA_PATH, build_schema, render_schema


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
