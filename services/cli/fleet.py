"""``driftline models fleet``: what each serving replica loaded, from the ``models.acks``
topic, against where the aliases point now."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from schemas import CATALOGUE, Event, ModelLoaded, ModelLoadFailed, Topics
from services.cli.record_text import print_json, version_label, when
from services.common.codec import decode
from services.common.errors import CodecError
from services.common.kafka_client import end_offsets, read_between
from services.common.settings import DriftlineSettings
from services.console.output import print_table
from services.registry.client import Registry


@dataclass(frozen=True)
class ReplicaState:
    """What one serving replica last did with one model."""

    replica_id: str
    model: str
    loaded: ModelLoaded | None
    failed: ModelLoadFailed | None
    failing: bool  # the replica's last word on this model is a failure

    def row(self, current: dict[str, int | None]) -> dict[str, Any]:
        """A flat record; ``current`` maps alias -> the version it points at now."""
        alias = self.loaded.alias if self.loaded else (self.failed.alias if self.failed else None)
        now = current.get(alias) if alias else None
        if self.failing:
            status = "failing"
        elif self.loaded is not None and now is not None and self.loaded.version != now:
            status = f"behind ({alias} is v{now})"
        else:
            status = "ok"
        return {
            "replica": self.replica_id,
            "model": self.model,
            "alias": alias,
            "loaded_version": self.loaded.version if self.loaded else None,
            "loaded_at": self.loaded.occurred_at if self.loaded else None,
            "load_ms": self.loaded.load_ms if self.loaded else None,
            "last_failure": (
                {
                    "version": self.failed.version,
                    "reason": self.failed.reason,
                    "detail": self.failed.detail,
                    "at": self.failed.occurred_at,
                }
                if self.failed
                else None
            ),
            "status": status,
        }


def fleet_state(events: Iterable[Event]) -> list[ReplicaState]:
    """Fold acknowledgements, in topic order, into each replica's latest state per model
    and alias (a replica serves ``champion`` and shadows ``challenger``; an ack without an
    alias, e.g. a refusal before the alias was known, counts as ``champion``).

    >>> from schemas import ModelLoaded, ModelLoadFailed
    >>> acks = [ModelLoaded(replica_id="r1", model="sea", version=2, load_ms=3.0),
    ...         ModelLoadFailed(replica_id="r1", model="sea", version=3, reason="bad_signature",
    ...                         detail="key k9 unknown")]
    >>> [(s.loaded.version, s.failed.reason, s.failing) for s in fleet_state(acks)]
    [(2, 'bad_signature', True)]
    """
    loaded: dict[tuple[str, str, str], ModelLoaded] = {}
    failed: dict[tuple[str, str, str], ModelLoadFailed] = {}
    failing: dict[tuple[str, str, str], bool] = {}
    for event in events:
        if isinstance(event, ModelLoaded):
            key = (event.replica_id, event.model, event.alias or "champion")
            loaded[key] = event
            failing[key] = False
        elif isinstance(event, ModelLoadFailed):
            key = (event.replica_id, event.model, event.alias or "champion")
            failed[key] = event
            failing[key] = True
    return [
        ReplicaState(key[0], key[1], loaded.get(key), failed.get(key), failing[key])
        for key in sorted(failing)
    ]


def fleet_cmd(args: argparse.Namespace) -> int:
    """Per replica and model: the version loaded, the last failure, and whether it lags."""
    settings = DriftlineSettings.load()
    topic = Topics(settings.topic_prefix).name("models.acks")
    spec = CATALOGUE["models.acks"]
    end = end_offsets(settings, topic)
    events: list[Event] = []
    undecodable = 0
    for record in read_between(settings, topic, {}, end):
        try:
            events.append(decode(record.value, spec))
        except CodecError:
            undecodable += 1
    states = [s for s in fleet_state(events) if args.model in (None, s.model)]
    current: dict[str, dict[str, int | None]] = {}
    registry = Registry.open(settings, relay=False)
    try:
        for model in {s.model for s in states}:
            info = registry.get_model(name=model)
            current[model] = dict(info.aliases) if info else {}
    finally:
        registry.close()
    records = [s.row(current[s.model]) for s in states]
    if args.json:
        print_json(records)
    else:
        rows = [
            (
                r["replica"],
                r["model"],
                r["alias"],
                version_label(r["loaded_version"]) if r["loaded_version"] else "",
                when(r["loaded_at"]),
                _failure(r["last_failure"]),
                when(r["last_failure"]["at"]) if r["last_failure"] else "",
                r["status"],
            )
            for r in records
        ]
        columns = (
            "replica",
            "model",
            "alias",
            "loaded",
            "loaded at",
            "last failure",
            "failed at",
            "status",
        )
        print_table(f"fleet ({topic}, {sum(end.values())} acks)", columns, rows)
    if undecodable:
        print(f"driftline: warning: {undecodable} undecodable ack(s) skipped", file=sys.stderr)
    return 0


def _failure(failure: dict[str, Any] | None) -> str:
    if failure is None:
        return ""
    return f"v{failure['version']} {failure['reason']}: {failure['detail']}"
