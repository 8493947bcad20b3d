"""JSON Schema export for non-Python producers and consumers (``schemas/json/``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from schemas.topics import event_classes

JSON_DIR = Path(__file__).parent / "json"


def json_schemas() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema of every event class."""
    out: dict[str, dict[str, Any]] = {}
    for cls in event_classes():
        schema = cls.model_json_schema(mode="validation")
        schema["$id"] = f"https://driftline.dev/schemas/{cls.type_name()}.json"
        schema["x-schema-version"] = cls.SCHEMA_VERSION
        out[f"{cls.type_name()}.json"] = schema
    return out


def render(schema: dict[str, Any]) -> str:
    """The exact text written for one schema."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def stale_files(directory: Path = JSON_DIR) -> list[str]:
    """Files under ``directory`` that differ from the models (missing, changed or extra)."""
    wanted = {name: render(schema) for name, schema in json_schemas().items()}
    present = {p.name for p in directory.glob("*.json")} if directory.is_dir() else set()
    stale = [
        n
        for n, text in wanted.items()
        if not (directory / n).is_file() or (directory / n).read_text(encoding="utf-8") != text
    ]
    stale += sorted(present - set(wanted))
    return sorted(stale)


def write(directory: Path = JSON_DIR) -> list[str]:
    """Write every schema, remove ones no longer in the contract; returns what changed."""
    changed = stale_files(directory)
    directory.mkdir(parents=True, exist_ok=True)
    wanted = json_schemas()
    for name, schema in wanted.items():
        (directory / name).write_text(render(schema), encoding="utf-8")
    for path in directory.glob("*.json"):
        if path.name not in wanted:
            path.unlink()
    return changed
