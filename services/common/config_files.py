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

# The largest config, as JSON, that the ``streams`` topic takes: Kafka's default record
# limit (1 MiB for the producer and the broker), less room for the envelope.
MAX_CONFIG_BYTES = 1_000_000

# libyaml's safe loader when PyYAML was built with it (the wheels are): the same documents
# and types as yaml.SafeLoader, about 20 times faster, which counts at 1,000 files.
try:
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # pragma: no cover - PyYAML without libyaml
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]


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
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_SafeLoader)
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
        config = StreamConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            str(path), f"not a valid stream config: {summarize(exc, limit=5)}"
        ) from exc
    size = len(config.model_dump_json())
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(
            str(path),
            f"{size:,} bytes as JSON, more than the {MAX_CONFIG_BYTES:,} a record of the "
            "streams topic may hold (fewer categories?)",
        )
    return config, had_version


CONFIG_SUFFIXES = (".yaml", ".yml")


def config_paths(paths: list[Path]) -> list[Path]:
    """The config files named by ``paths``: files as given, directories expanded to their
    ``*.yaml`` and ``*.yml`` files (not recursively, sorted by name). A missing path or a
    directory without configs is a ConfigError naming it; a file named twice counts once.
    """
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            inside = sorted(
                p for p in path.iterdir() if p.is_file() and p.suffix.lower() in CONFIG_SUFFIXES
            )
            if not inside:
                raise ConfigError(str(path), "a directory with no *.yaml or *.yml config")
            found += inside
        elif path.exists():
            found.append(path)
        else:
            raise ConfigError(str(path), "no such file or directory")
    unique: dict[Path, Path] = {}
    for path in found:
        unique.setdefault(path.resolve(), path)
    return list(unique.values())


def read_config_files(paths: list[Path]) -> list[tuple[Path, StreamConfig, bool]]:
    """Every file of ``paths`` read with :func:`read_config_file`, all or nothing.

    Each bad file and each stream named by more than one file is reported, all in one
    ConfigError, so nothing is published from a set with any problem in it.
    """
    read: list[tuple[Path, StreamConfig, bool]] = []
    problems: list[ConfigError] = []
    for path in paths:
        try:
            config, had_version = read_config_file(path)
        except ConfigError as exc:
            problems.append(exc)
            continue
        read.append((path, config, had_version))
    files: dict[str, list[Path]] = {}
    for path, config, _ in read:
        files.setdefault(config.stream, []).append(path)
    for stream, named in files.items():
        if len(named) > 1:
            problems.append(
                ConfigError(
                    str(named[0]),
                    f"stream {stream!r} is also in {', '.join(map(str, named[1:]))}; "
                    "publish one config per stream",
                )
            )
    if problems and len(paths) == 1:
        raise problems[0]
    if problems:
        lines = "\n".join(f"  {p}" for p in problems)
        raise ConfigError(
            "config files",
            f"{len(problems)} problem(s) in {len(paths)} files; nothing was published:\n{lines}",
        )
    return read
