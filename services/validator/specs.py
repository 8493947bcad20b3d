"""The live spec registry: the latest stream config of every stream, compiled for checks.

Pure: the edge reads the compacted ``streams`` topic and feeds every config to
:meth:`SpecRegistry.apply` in topic order; the latest version of a stream wins.
Older versions are kept (a few per stream) so that a redelivered example can be
re-emitted exactly as it was first judged.

>>> from schemas import StreamConfig
>>> reg = SpecRegistry()
>>> cfg = StreamConfig.model_validate({
...     "stream": "sea", "version": 1,
...     "spec": {"features": [{"name": "x1", "type": "number", "min": 0, "max": 10}],
...              "label": {"kind": "class", "classes": [False, True]}}})
>>> reg.apply(cfg)
True
>>> reg.latest("sea").version, reg.latest("nope") is None
(1, True)
>>> reg.apply(cfg.model_copy(update={"version": 2}))
True
>>> reg.versions()
{'sea': 2}
>>> reg.get("sea", 1).version
1
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final, Literal

from schemas import StreamConfig

NUMBER: Final = 0
CATEGORY: Final = 1
BOOL: Final = 2
_KINDS: Final = {"number": NUMBER, "category": CATEGORY, "bool": BOOL}
# Versions kept per stream besides the latest (for redeliveries judged by an older one).
HISTORY_PER_STREAM: Final = 20


@dataclass(frozen=True, slots=True)
class FeatureRule:
    """One feature of a compiled spec."""

    name: str
    kind: int  # NUMBER, CATEGORY or BOOL
    min: float | None
    max: float | None
    categories: frozenset[str] | None
    shown_categories: tuple[str, ...]
    nullable: bool


@dataclass(frozen=True, slots=True)
class CompiledSpec:
    """A stream config turned into what the rules check fast."""

    stream: str
    version: int
    config: StreamConfig
    features: tuple[FeatureRule, ...]
    names: frozenset[str]
    label_kind: Literal["class", "number"]
    # (type, value) -> the class value: True, 1 and "1" are three different classes.
    classes: Mapping[tuple[type, Any], Any]
    shown_classes: tuple[Any, ...]
    label_min: float | None
    label_max: float | None
    max_future: timedelta
    max_age: timedelta | None

    @classmethod
    def compile(cls, config: StreamConfig) -> CompiledSpec:
        """Compile a published config (``version`` must be set)."""
        if config.version is None:
            raise ValueError(f"stream {config.stream!r}: a config on the topic needs a version")
        spec = config.spec
        rules = tuple(
            FeatureRule(
                name=f.name,
                kind=_KINDS[f.type],
                min=f.min,
                max=f.max,
                categories=frozenset(f.categories) if f.categories is not None else None,
                shown_categories=tuple(f.categories or ()),
                nullable=f.nullable,
            )
            for f in spec.features
        )
        label = spec.label
        classes = {(type(c), c): c for c in label.classes or ()}
        return cls(
            stream=config.stream,
            version=config.version,
            config=config,
            features=rules,
            names=frozenset(r.name for r in rules),
            label_kind=label.kind,
            classes=classes,
            shown_classes=tuple(label.classes or ()),
            label_min=label.min,
            label_max=label.max,
            max_future=timedelta(seconds=spec.max_future_s),
            max_age=timedelta(seconds=spec.max_age_s) if spec.max_age_s is not None else None,
        )


class SpecRegistry:
    """The latest compiled spec per stream, plus a short history of older versions."""

    def __init__(self) -> None:
        self._latest: dict[str, CompiledSpec] = {}
        self._history: dict[str, dict[int, CompiledSpec]] = {}

    def apply(self, config: StreamConfig) -> bool:
        """Take in a config read from the topic; True when it became the stream's latest.

        A version lower than the current latest is remembered but does not replace it;
        an equal version read later replaces it (the topic's order decides).
        """
        compiled = CompiledSpec.compile(config)
        history = self._history.setdefault(config.stream, {})
        history[compiled.version] = compiled
        if len(history) > HISTORY_PER_STREAM:
            del history[min(history)]
        current = self._latest.get(config.stream)
        if current is not None and compiled.version < current.version:
            return False
        self._latest[config.stream] = compiled
        return True

    def remove(self, stream: str) -> bool:
        """Forget a stream (a tombstone on the compacted topic); True if it was known."""
        self._history.pop(stream, None)
        return self._latest.pop(stream, None) is not None

    def latest(self, stream: str) -> CompiledSpec | None:
        """The spec in force for ``stream``, if one was published."""
        return self._latest.get(stream)

    def get(self, stream: str, version: int) -> CompiledSpec | None:
        """A given version of a stream's spec, if it is still known."""
        found = self._history.get(stream, {}).get(version)
        if found is None:
            latest = self._latest.get(stream)
            if latest is not None and latest.version == version:
                return latest
        return found

    def versions(self) -> dict[str, int]:
        """The latest version of every known stream."""
        return {stream: spec.version for stream, spec in sorted(self._latest.items())}

    def __len__(self) -> int:
        return len(self._latest)
