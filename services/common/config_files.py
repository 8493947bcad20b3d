"""Stream config files: the YAML that ``driftline spec`` writes and reads (pure).

>>> from schemas import StreamConfig
>>> config = StreamConfig.model_validate({
...     "stream": "s", "spec": {"features": [{"name": "x", "type": "number"}],
...                            "label": {"kind": "class", "classes": [0, 1]}}})
>>> text = config_to_yaml(config)
>>> text.splitlines()[0], "version:" in text
('stream: s', False)
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from schemas import StreamConfig
from services.common.codec import summarize
from services.common.errors import ConfigError

BODY_FIELDS = ("stream", "spec", "model", "policy")


def config_to_yaml(config: StreamConfig) -> str:
    """A config's body (stream, spec, model, policy) as YAML, unset fields left out."""
    body = config.model_dump(mode="json", include=set(BODY_FIELDS))
    spec = body["spec"]
    spec["features"] = [{k: v for k, v in f.items() if v is not None} for f in spec["features"]]
    spec["label"] = {k: v for k, v in spec["label"].items() if v is not None}
    if spec.get("max_age_s") is None:
        spec.pop("max_age_s", None)
    return str(yaml.safe_dump(body, sort_keys=False, allow_unicode=True, width=100))


def read_config_file(path: Path) -> tuple[StreamConfig, bool]:
    """A YAML stream config, validated, and whether the file carried a ``version`` (which
    is ignored: versions are assigned on publish). Errors are ConfigError naming the file.
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), f"not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(str(path), "expected a mapping with stream, spec, model and policy")
    had_version = data.pop("version", None) is not None
    unknown = sorted(set(data) - set(BODY_FIELDS))
    if unknown:
        raise ConfigError(
            str(path), f"unknown top-level key(s) {', '.join(unknown)}; expected {BODY_FIELDS}"
        )
    try:
        return StreamConfig.model_validate(data), had_version
    except ValidationError as exc:
        raise ConfigError(
            str(path), f"not a valid stream config: {summarize(exc, limit=5)}"
        ) from exc
