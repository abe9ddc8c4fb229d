"""The wire format's JSON Schemas (docs/schemas/), for tests that check real payloads."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

SCHEMAS = Path(__file__).resolve().parent.parent / "docs" / "schemas"
EVENT_SCHEMA = "run-event.schema.json"
JOB_SCHEMA = "run-job.schema.json"
HISTORY_SCHEMA = "run-history.schema.json"


@functools.cache
def validator(name: str) -> Any:
    schema = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def violations(name: str, instance: object) -> list[str]:
    """What is wrong with ``instance`` under the schema ``name``; empty where it conforms."""
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '(root)'}: {error.message}"
        for error in validator(name).iter_errors(instance)
    ]
