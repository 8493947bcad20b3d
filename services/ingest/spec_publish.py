"""Publishing stream configs to the ``streams`` topic, for ``driftline spec publish
DIR|FILES...`` and the demo: many configs in one run (:func:`publish_configs`) or one
(:func:`publish_config`).

Every file is validated before anything is sent (a bad file is named with its problem and
nothing is published). The ``streams`` topic is then read once to learn each stream's
version in force; each config that differs from it (each one, with ``force``) is sent as
the next version of its stream, the acknowledgements are awaited together, and the
acknowledged versions are recorded in the registry in one transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from schemas import StreamConfig, Topics
from services.common.codec import encode
from services.common.errors import DriftlineError
from services.common.kafka_client import make_producer
from services.common.settings import DriftlineSettings
from services.common.stream_configs import StreamConfigs
from services.registry.client import Registry

PUBLISHED = "published"
UNCHANGED = "unchanged"
FAILED = "failed"


@dataclass(frozen=True)
class Outcome:
    """What publishing one config did.

    ``config`` is the version published (``published``), the version in force
    (``unchanged``) or the config that could not be sent (``failed``, no version).
    """

    config: StreamConfig
    status: str  # PUBLISHED | UNCHANGED | FAILED
    detail: str
    path: Path | None = None

    @property
    def message(self) -> str:
        """The status and its detail, for people."""
        return f"{self.status} {self.detail}" if self.detail else self.status


def read_configs(settings: DriftlineSettings) -> dict[str, StreamConfig]:
    """The latest config of every stream on the ``streams`` topic (tombstones honoured)."""
    configs = StreamConfigs(settings, client_id="driftline-spec")
    try:
        configs.catch_up()
        return configs.all()
    finally:
        configs.close()


def next_versions(
    configs: Sequence[StreamConfig], current: dict[str, StreamConfig], *, force: bool = False
) -> list[StreamConfig | Outcome]:
    """Each config as the next version of its stream, or an ``unchanged`` outcome when it
    equals the version in force (unless ``force``). Pure.

    >>> from schemas import StreamConfig
    >>> body = {"stream": "s", "spec": {"features": [{"name": "x", "type": "number"}],
    ...         "label": {"kind": "class", "classes": [0, 1]}}}
    >>> config = StreamConfig.model_validate(body)
    >>> [c.version for c in next_versions([config], {})]
    [1]
    >>> v3 = config.model_copy(update={"version": 3})
    >>> next_versions([config], {"s": v3})[0].status
    'unchanged'
    >>> next_versions([config], {"s": v3}, force=True)[0].version
    4
    """
    planned: list[StreamConfig | Outcome] = []
    for config in configs:
        now = current.get(config.stream)
        if now is not None and not force and now.config_sha256() == config.config_sha256():
            planned.append(Outcome(now, UNCHANGED, "(use --force to publish it again)"))
            continue
        version = (now.version or 0) + 1 if now is not None else 1
        planned.append(config.model_copy(update={"version": version}))
    return planned


def publish_configs(
    settings: DriftlineSettings,
    configs: Sequence[StreamConfig],
    *,
    force: bool = False,
    paths: Sequence[Path | None] | None = None,
    on_planned: Callable[[int], None] | None = None,
    on_acked: Callable[[int], None] | None = None,
) -> list[Outcome]:
    """Publish ``configs`` (one per stream) as the next versions of their streams.

    Reads the ``streams`` topic once, sends every changed config, waits for all the
    acknowledgements, then records the acknowledged versions in the registry in one
    transaction. Returns one outcome per config, in order. ``on_planned(n)`` is told how
    many will be sent; ``on_acked(1)`` runs as each is acknowledged (progress).
    """
    named: list[Path | None] = list(paths) if paths is not None else [None] * len(configs)
    planned = next_versions(configs, read_configs(settings), force=force)
    sending = [(i, c) for i, c in enumerate(planned) if isinstance(c, StreamConfig)]
    if on_planned is not None:
        on_planned(len(sending))
    outcomes: dict[int, Outcome] = {
        i: Outcome(o.config, o.status, o.detail, named[i])
        for i, o in enumerate(planned)
        if isinstance(o, Outcome)
    }
    topic = Topics(settings.topic_prefix).name("streams")
    if sending:
        outcomes |= _send(settings, topic, sending, named, on_acked)
    acked = [o.config for o in outcomes.values() if o.status == PUBLISHED]
    if acked:
        record_published_specs(settings, acked)
    return [outcomes[i] for i in range(len(planned))]


def _send(
    settings: DriftlineSettings,
    topic: str,
    sending: list[tuple[int, StreamConfig]],
    named: list[Path | None],
    on_acked: Callable[[int], None] | None,
) -> dict[int, Outcome]:
    """Send every config, flush once, and read each one's acknowledgement.

    A config the producer refuses to send (no broker within its timeout, ...) stops the
    sending: it and the configs after it are ``failed``; those sent before still count.
    """
    timeout_s = max(30.0, settings.kafka_timeout_s * 2)
    outcomes: dict[int, Outcome] = {}
    producer = make_producer(settings, client_id="driftline-spec", linger_ms=20)
    try:
        futures: list[tuple[int, StreamConfig, Any]] = []
        progress = on_acked or (lambda _n: None)
        for n, (i, config) in enumerate(sending):
            try:
                future = producer.send(topic, key=config.stream.encode(), value=encode(config))
            except Exception as exc:  # kafka-python's errors, named for the person
                for j, unsent in sending[n:]:
                    why = f"(not sent: {exc})" if j == i else "(not sent after an error)"
                    outcomes[j] = Outcome(unsent, FAILED, why, named[j])
                break
            future.add_callback(lambda _metadata: progress(1))
            futures.append((i, config, future))
        deadline = time.monotonic() + timeout_s
        try:
            producer.flush(timeout=timeout_s)
        except Exception:  # noqa: S110 - a timeout: each future says what happened below
            pass
        for i, config, future in futures:
            try:
                metadata = future.get(timeout=max(0.1, deadline - time.monotonic()))
            except Exception as exc:  # kafka-python's errors, named for the person
                outcomes[i] = Outcome(config, FAILED, f"(sending to {topic}: {exc})", named[i])
                continue
            detail = f"to {topic} at offset {metadata.offset}"
            outcomes[i] = Outcome(config, PUBLISHED, detail, named[i])
    finally:
        producer.close()
    return outcomes


def record_published_specs(settings: DriftlineSettings, configs: Sequence[StreamConfig]) -> None:
    """Record configs in the registry once they are on the ``streams`` topic.

    Called by ``driftline spec publish`` after the broker acknowledged the configs, so the
    registry holds every version seen: ``(stream, version, sha256)`` and the config. One
    transaction for all of them.
    """
    registry = Registry.open(settings, relay=False)  # recording a spec publishes nothing
    try:
        registry.record_specs(configs=configs)
    finally:
        registry.close()


def publish_config(
    settings: DriftlineSettings, config: StreamConfig, *, force: bool = False
) -> tuple[StreamConfig, str]:
    """Publish ``config`` as the next version of its stream and record it in the registry.

    An unchanged config is not published again unless ``force``; returns the config in
    force and what happened. Raises DriftlineError when the broker did not acknowledge it.
    """
    [outcome] = publish_configs(settings, [config], force=force)
    if outcome.status == FAILED:
        raise DriftlineError(f"{config.stream}: {outcome.message}")
    return outcome.config, outcome.message
