"""``driftline models|runs|gc``: the registry from the command line.

The commands use the registry library directly (``DRIFTLINE_REGISTRY_URL``), so they
work without the registry's HTTP server. Alias moves are compare-and-set: ``--expect``
names the version you saw (``none`` when the alias is unset) and a move that finds
another version fails, saying where the alias is now (exit 1). A move commits in the
registry first and is then published to Kafka through the outbox; when Kafka cannot be
reached the move stands and its event waits in the outbox (a warning says so) until a
registry process relays it.

Moves made here are ``manual`` (a person decided): a frozen model accepts them.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from rich.console import Console

from schemas import CATALOGUE, AliasReason, Event, ModelLoaded, ModelLoadFailed, Topics
from services.common.codec import decode
from services.common.errors import CodecError
from services.common.kafka_client import end_offsets, make_producer, read_between
from services.common.settings import DriftlineSettings
from services.console.output import print_table
from services.registry.client import AliasMove, ModelInfo, ModelVersion, Registry, is_remote
from services.registry.errors import AliasConflict, NotFound, RegistryError

# -- parsers --------------------------------------------------------------------------------


def expect_version(text: str) -> int | None:
    """``--expect``: a version number, or ``none`` for an unset alias.

    >>> expect_version("3"), expect_version("None")
    (3, None)
    """
    if text.strip().lower() in ("none", "null", "unset"):
        return None
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a version number nor 'none' (the alias is unset)"
        )
    return number


def _version(text: str) -> int:
    number = expect_version(text)
    if number is None:
        raise argparse.ArgumentTypeError("a version number is needed here")
    return number


def _non_negative(kind: type[int] | type[float], least: int = 0) -> Any:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from exc
        if value < least:
            raise argparse.ArgumentTypeError(f"{text!r} is less than {least}")
        return value

    return parse


def register(sub: Any) -> None:
    """Add the ``models``, ``runs`` and ``gc`` commands."""
    _register_models(sub)
    _register_runs(sub)
    gc = sub.add_parser("gc", help="remove old artifacts, checkpoints and handled ids")
    gc.add_argument(
        "--keep-versions",
        type=_non_negative(int),
        default=10,
        help="per model, keep the artifacts of the newest N versions (aliased ones always)",
    )
    gc.add_argument(
        "--keep-checkpoints",
        type=_non_negative(int),
        default=3,
        help="keep the newest N checkpoints of each owner and key",
    )
    gc.add_argument(
        "--handled-ttl-days",
        type=_non_negative(float),
        default=30.0,
        help="forget handled event ids older than this",
    )
    gc.add_argument(
        "--dry-run", action="store_true", help="count what would be removed, remove nothing"
    )
    gc.add_argument("--json", action="store_true", help="machine-readable output")
    gc.set_defaults(func=gc_cmd)


def _register_models(sub: Any) -> None:
    parser = sub.add_parser("models", help="model versions, aliases, lineage and the fleet")
    cmds = parser.add_subparsers(dest="models_cmd", metavar="SUBCOMMAND", required=True)

    def read(name: str, help_text: str) -> argparse.ArgumentParser:
        cmd: argparse.ArgumentParser = cmds.add_parser(name, help=help_text)
        cmd.add_argument("--json", action="store_true", help="machine-readable output")
        return cmd

    read("list", "every model with its aliases").set_defaults(func=list_cmd)

    show = read("show", "a model: its aliases and versions")
    show.add_argument("name")
    show.add_argument(
        "--limit", type=_non_negative(int, 1), default=20, help="newest N versions (20)"
    )
    show.set_defaults(func=show_cmd)

    diff = read("diff", "compare two versions: params, metrics, lineage, algorithm, spec")
    diff.add_argument("name")
    diff.add_argument("v1", type=_version)
    diff.add_argument("v2", type=_version)
    diff.set_defaults(func=diff_cmd)

    lineage = read("lineage", "the exact Kafka data a version learned from")
    lineage.add_argument("name")
    lineage.add_argument("version", type=_version)
    lineage.set_defaults(func=lineage_cmd)

    fleet = read("fleet", "what each serving replica loaded, from the models.acks topic")
    fleet.add_argument("--model", help="only this model")
    fleet.set_defaults(func=fleet_cmd)

    reproduce = read("reproduce", "rebuild a trainer version from its lineage and compare")
    reproduce.add_argument("name")
    reproduce.add_argument("version", type=_version)
    reproduce.set_defaults(func=reproduce_cmd)

    expect_help = "compare-and-set: the version the alias points at now ('none': unset)"
    promote = cmds.add_parser("promote", help="point an alias at a version (compare-and-set)")
    promote.add_argument("name")
    promote.add_argument("version", type=_version)
    promote.add_argument("--alias", default="champion", help="alias to move (champion)")
    promote.add_argument("--expect", type=expect_version, required=True, help=expect_help)
    promote.add_argument("--reason", help="why, recorded with the move")
    promote.set_defaults(func=promote_cmd)

    rollback = cmds.add_parser("rollback", help="move an alias back to its previous version")
    rollback.add_argument("name")
    rollback.add_argument("--alias", default="champion", help="alias to move back (champion)")
    rollback.add_argument("--expect", type=expect_version, required=True, help=expect_help)
    rollback.add_argument("--reason", help="why, recorded with the move")
    rollback.set_defaults(func=rollback_cmd)

    freeze = cmds.add_parser("freeze", help="stop every automatic alias move of a model")
    freeze.add_argument("name")
    freeze.add_argument("--reason", help="why, shown with the model")
    freeze.set_defaults(func=freeze_cmd)

    unfreeze = cmds.add_parser("unfreeze", help="resume automatic alias moves of a model")
    unfreeze.add_argument("name")
    unfreeze.set_defaults(func=unfreeze_cmd)


def _register_runs(sub: Any) -> None:
    parser = sub.add_parser("runs", help="training runs and the candidates they tried")
    cmds = parser.add_subparsers(dest="runs_cmd", metavar="SUBCOMMAND", required=True)
    listing = cmds.add_parser("list", help="training runs, newest first")
    listing.add_argument("--model", help="only this model")
    listing.add_argument(
        "--limit", type=_non_negative(int, 1), default=50, help="newest N runs (50)"
    )
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(func=runs_list_cmd)
    show = cmds.add_parser("show", help="one run with every candidate")
    show.add_argument("run_id")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(func=runs_show_cmd)


# -- shared helpers -------------------------------------------------------------------------


@contextmanager
def _registry() -> Iterator[tuple[DriftlineSettings, Registry]]:
    """The settings and the registry (no relay on open: reads need no broker)."""
    settings = DriftlineSettings.load()
    registry = Registry.open(settings, relay=False)
    try:
        yield settings, registry
    finally:
        registry.close()


def _print_json(doc: Any) -> None:
    print(json.dumps(doc, default=_json_value))


def _json_value(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return str(value)


def _error(message: str) -> int:
    print(f"driftline: error: {message}", file=sys.stderr)
    return 1


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):
        return "cli"


def _when(value: datetime | None) -> str:
    return "" if value is None else value.isoformat(timespec="seconds").replace("+00:00", "Z")


def _v(version: int | None) -> str:
    return "-" if version is None else f"v{version}"


def _aliases(info: ModelInfo) -> str:
    return ", ".join(f"{a}={_v(v)}" for a, v in sorted(info.aliases.items()))


def _metrics(metrics: dict[str, float], limit: int = 3) -> str:
    shown = [f"{k}={v:.4g}" for k, v in sorted(metrics.items())[:limit]]
    return ", ".join(shown) + (" …" if len(metrics) > limit else "")


def _model_or_none(registry: Registry, name: str) -> ModelInfo | None:
    info = registry.get_model(name=name)
    if info is None:
        _error(f"no model {name!r} (see `driftline models list`)")
    return info


def _publish(settings: DriftlineSettings, registry: Registry) -> None:
    """Relay the outbox now; when Kafka cannot take it, say that the event is queued.
    A registry service relays its own outbox (woken by the move itself)."""
    if is_remote(settings.registry_url):
        return
    producer: Any = None
    problem: str | None = None
    kafka_log = logging.getLogger("kafka")
    level = kafka_log.level
    kafka_log.setLevel(logging.CRITICAL + 1)  # its retries are summed up below, once
    try:
        producer = make_producer(settings)
        registry.publish_outbox(producer)
    except Exception as exc:  # noqa: BLE001 - any failure leaves the rows queued
        problem = str(exc) or type(exc).__name__
    finally:
        try:
            if producer is not None:
                producer.close()
        finally:
            kafka_log.setLevel(level)
    pending = registry.outbox_backlog()
    if problem is None and not pending:
        Console().print(f"published to {registry.topics.name('models')}")
        return
    print(
        "driftline: warning: the move is committed in the registry, but its event is queued: "
        f"{pending} event(s) wait in the outbox"
        + (f" because Kafka is unreachable ({problem})" if problem else "")
        + ". They are published when a registry process next relays "
        "(`driftline run registry` does so every few seconds).",
        file=sys.stderr,
    )


# -- models ---------------------------------------------------------------------------------


def list_cmd(args: argparse.Namespace) -> int:
    """Every model with its latest version, aliases and frozen flag."""
    with _registry() as (_, registry):
        models = registry.list_models()
    if args.json:
        _print_json([m.model_dump(mode="json") for m in models])
        return 0
    rows = [
        (
            m.name,
            m.latest_version,
            _aliases(m),
            ("yes" + (f" ({m.frozen_reason})" if m.frozen_reason else "")) if m.frozen else "",
        )
        for m in models
    ]
    print_table("models", ("model", "latest", "aliases", "frozen"), rows)
    return 0


def show_cmd(args: argparse.Namespace) -> int:
    """A model: frozen flag, each alias with its last move, and its newest versions."""
    with _registry() as (_, registry):
        info = _model_or_none(registry, args.name)
        if info is None:
            return 1
        versions = registry.list_versions(model=args.name, limit=args.limit)
        moves: dict[str, AliasMove] = {}
        for move in registry.alias_history(model=args.name, limit=1000):
            moves.setdefault(move.alias, move)
    if args.json:
        _print_json(
            {
                "model": info.model_dump(mode="json"),
                "last_moves": {a: m.model_dump(mode="json") for a, m in sorted(moves.items())},
                "versions": [v.model_dump(mode="json") for v in versions],
            }
        )
        return 0
    frozen = "no"
    if info.frozen:
        frozen = "yes" + (f": {info.frozen_reason}" if info.frozen_reason else "")
    print_table(
        f"model {info.name}",
        ("latest version", "frozen"),
        [(_v(info.latest_version), frozen)],
    )
    alias_rows = []
    for alias, version in sorted(info.aliases.items()):
        last = moves.get(alias)
        alias_rows.append(
            (
                alias,
                _v(version),
                _when(last.moved_at) if last else "",
                last.reason if last else "",
                last.actor if last else "",
            )
        )
    print_table("aliases", ("alias", "version", "moved at", "reason", "by"), alias_rows)
    by_version: dict[int, list[str]] = {}
    for alias, version in info.aliases.items():
        if version is not None:
            by_version.setdefault(version, []).append(alias)
    version_rows = [
        (
            _v(v.version),
            v.kind,
            v.algorithm,
            v.status,
            ", ".join(sorted(by_version.get(v.version, []))),
            _metrics(v.metrics),
            v.lineage.example_count,
            _when(v.created_at),
        )
        for v in versions
    ]
    columns = ("version", "kind", "algorithm", "status", "aliases", "metrics", "examples")
    print_table(
        f"versions (newest {len(versions)} of {info.latest_version})",
        (*columns, "created"),
        version_rows,
    )
    return 0


def diff_rows(a: ModelVersion, b: ModelVersion) -> list[tuple[str, str, str, str]]:
    """Field-by-field comparison of two versions: ``(field, a, b, change)``.

    ``change`` is the numeric delta of a metric, ``changed`` for any other difference,
    and empty when both are equal.
    """
    rows: list[tuple[str, str, str, str]] = []

    def add(field: str, x: Any, y: Any) -> None:
        left, right = _text(x), _text(y)
        change = "" if left == right else "changed"
        if (
            change
            and isinstance(x, int | float)
            and isinstance(y, int | float)
            and not isinstance(x, bool)
            and not isinstance(y, bool)
        ):
            change = f"{y - x:+.4g}"
        rows.append((field, left, right, change))

    for field in ("kind", "flavor", "algorithm", "spec_sha256", "status", "parent_version"):
        add(field, getattr(a, field), getattr(b, field))
    add("run_id", a.run_id, b.run_id)
    add("training_duration_s", a.training_duration_s, b.training_duration_s)
    add("artifact.sha256", a.artifact.sha256, b.artifact.sha256)
    add("artifact.size", a.artifact.size, b.artifact.size)
    for key in sorted(set(a.params) | set(b.params)):
        add(f"params.{key}", a.params.get(key), b.params.get(key))
    for key in sorted(set(a.metrics) | set(b.metrics)):
        add(f"metrics.{key}", a.metrics.get(key), b.metrics.get(key))
    for key in sorted(set(a.evaluation) | set(b.evaluation)):
        add(f"evaluation.{key}", a.evaluation.get(key), b.evaluation.get(key))
    add("lineage.example_count", a.lineage.example_count, b.lineage.example_count)
    add("lineage.event_time_start", a.lineage.event_time_start, b.lineage.event_time_start)
    add("lineage.event_time_end", a.lineage.event_time_end, b.lineage.event_time_end)
    ranges_a = {(r.topic, r.partition): f"[{r.start}, {r.end})" for r in a.lineage.ranges}
    ranges_b = {(r.topic, r.partition): f"[{r.start}, {r.end})" for r in b.lineage.ranges}
    for topic, partition in sorted(set(ranges_a) | set(ranges_b)):
        tp = (topic, partition)
        add(f"lineage.{topic}[{partition}]", ranges_a.get(tp), ranges_b.get(tp))
    return rows


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return _when(value)
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def diff_cmd(args: argparse.Namespace) -> int:
    """Compare two versions of a model."""
    with _registry() as (_, registry):
        found = [registry.get_version(model=args.name, version=v) for v in (args.v1, args.v2)]
    missing = [v for v, got in zip((args.v1, args.v2), found, strict=True) if got is None]
    if missing:
        return _error(f"no version {args.name} {', '.join(_v(v) for v in missing)}")
    a, b = found
    assert a is not None and b is not None  # noqa: S101 - checked just above
    rows = diff_rows(a, b)
    columns = ("field", _v(args.v1), _v(args.v2), "change")
    if args.json:
        _print_json(
            [{"field": f, "a": x, "b": y, "changed": bool(c), "change": c} for f, x, y, c in rows]
        )
        return 0
    changed = sum(1 for row in rows if row[3])
    print_table(f"{args.name}: {_v(args.v1)} vs {_v(args.v2)} ({changed} differ)", columns, rows)
    return 0


def lineage_cmd(args: argparse.Namespace) -> int:
    """The offset ranges, event-time range and example count a version learned from."""
    with _registry() as (_, registry):
        found = registry.get_version(model=args.name, version=args.version)
    if found is None:
        return _error(f"no version {args.name} {_v(args.version)}")
    lineage = found.lineage
    if args.json:
        doc = lineage.model_dump(mode="json")
        for item, offsets in zip(doc["ranges"], lineage.ranges, strict=True):
            item["count"] = offsets.count
        _print_json({"model": found.model, "version": found.version, "lineage": doc})
        return 0
    rows = [
        (r.topic, r.partition, f"[{r.start}, {r.end})", r.count)
        for r in sorted(lineage.ranges, key=lambda r: (r.topic, r.partition))
    ]
    print_table(
        f"{found.model} {_v(found.version)}: offset ranges (half-open)",
        ("topic", "partition", "offsets", "count"),
        rows,
    )
    span = (
        f"{_when(lineage.event_time_start) or '?'} .. {_when(lineage.event_time_end) or '?'}"
        if lineage.event_time_start or lineage.event_time_end
        else "unknown"
    )
    Console().print(f"examples: {lineage.example_count}   event time: {span}")
    return 0


def promote_cmd(args: argparse.Namespace) -> int:
    """Compare-and-set an alias to a version, then publish the move."""
    with _registry() as (settings, registry):
        evidence: dict[str, Any] = {"operation": "promote"}
        if args.reason:
            evidence["note"] = args.reason
        try:
            move = registry.move_alias(
                model=args.name,
                alias=args.alias,
                to_version=args.version,
                expect=args.expect,
                reason=AliasReason.MANUAL,
                actor=_actor(),
                evidence=evidence,
            )
        except AliasConflict as exc:
            return _conflict(exc)
        except RegistryError as exc:
            return _error(str(exc))
        Console().print(
            f"{move.model}@{move.alias}: {_v(move.from_version)} -> {_v(move.to_version)}"
        )
        _publish(settings, registry)
    return 0


def rollback_cmd(args: argparse.Namespace) -> int:
    """Move an alias back to the version before its last move (compare-and-set)."""
    with _registry() as (settings, registry):
        evidence: dict[str, Any] = {"operation": "rollback"}
        if args.reason:
            evidence["note"] = args.reason
        try:
            move = registry.rollback(
                model=args.name,
                alias=args.alias,
                expect=args.expect,
                actor=_actor(),
                evidence=evidence,
                reason=AliasReason.MANUAL,
            )
        except AliasConflict as exc:
            return _conflict(exc)
        except RegistryError as exc:
            return _error(str(exc))
        Console().print(
            f"{move.model}@{move.alias}: rolled back {_v(move.from_version)} -> "
            f"{_v(move.to_version)}"
        )
        _publish(settings, registry)
    return 0


def _conflict(exc: AliasConflict) -> int:
    now = "none" if exc.actual is None else str(exc.actual)
    return _error(f"{exc} (nothing changed; to move it anyway, rerun with --expect {now})")


def freeze_cmd(args: argparse.Namespace) -> int:
    """Freeze a model: the learner, trainer and evaluator stop moving its aliases."""
    with _registry() as (_, registry):
        try:
            info = registry.freeze(model=args.name, frozen=True, reason=args.reason)
        except NotFound as exc:
            return _error(str(exc))
    Console().print(
        f"{info.name} is frozen: automatic alias moves are refused until "
        f"`driftline models unfreeze {info.name}` (manual promote and rollback still work)"
    )
    return 0


def unfreeze_cmd(args: argparse.Namespace) -> int:
    """Unfreeze a model: automatic alias moves resume."""
    with _registry() as (_, registry):
        try:
            info = registry.freeze(model=args.name, frozen=False)
        except NotFound as exc:
            return _error(str(exc))
    Console().print(f"{info.name} is unfrozen: automatic alias moves resume")
    return 0


# -- the fleet ------------------------------------------------------------------------------


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
        _print_json(records)
    else:
        rows = [
            (
                r["replica"],
                r["model"],
                r["alias"],
                _v(r["loaded_version"]) if r["loaded_version"] else "",
                _when(r["loaded_at"]),
                _failure(r["last_failure"]),
                _when(r["last_failure"]["at"]) if r["last_failure"] else "",
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


# -- runs and gc ----------------------------------------------------------------------------


def runs_list_cmd(args: argparse.Namespace) -> int:
    """Training runs, newest first."""
    with _registry() as (_, registry):
        runs = registry.list_runs(model=args.model, limit=args.limit)
    if args.json:
        _print_json([r.model_dump(mode="json") for r in runs])
        return 0
    rows = [
        (
            r.id,
            r.model,
            r.status,
            _v(r.winner_version) if r.winner_version else "",
            len(r.candidates),
            r.decision or "",
            _when(r.started_at),
            _when(r.finished_at),
        )
        for r in runs
    ]
    columns = ("run", "model", "status", "winner", "candidates", "decision", "started", "finished")
    print_table("training runs", columns, rows)
    return 0


def runs_show_cmd(args: argparse.Namespace) -> int:
    """One training run: trigger, window, champion, decision and every candidate."""
    with _registry() as (_, registry):
        run = registry.get_run(run_id=args.run_id)
    if run is None:
        return _error(f"no training run {args.run_id!r} (see `driftline runs list`)")
    if args.json:
        _print_json(run.model_dump(mode="json"))
        return 0
    facts: Sequence[tuple[str, Any]] = [
        ("model", run.model),
        ("status", run.status),
        ("decision", run.decision or ""),
        ("winner", _v(run.winner_version) if run.winner_version else ""),
        ("trigger event", run.trigger_event_id),
        ("trigger", _text(run.trigger)),
        ("window", _text(run.window)),
        ("champion", _text(run.champion)),
        ("started", _when(run.started_at)),
        ("finished", _when(run.finished_at)),
    ]
    print_table(f"run {run.id}", ("field", "value"), facts)
    rows = [
        (
            c.name,
            _v(c.version) if c.version else "",
            f"{c.fit_s:.2f}",
            _text(c.metrics),
            _text(c.params),
            c.note or "",
        )
        for c in run.candidates
    ]
    print_table("candidates", ("candidate", "version", "fit s", "metrics", "params", "note"), rows)
    return 0


def gc_cmd(args: argparse.Namespace) -> int:
    """Garbage-collect the registry."""
    with _registry() as (_, registry):
        report = registry.gc(
            keep_versions=args.keep_versions,
            keep_checkpoints=args.keep_checkpoints,
            handled_ttl=timedelta(days=args.handled_ttl_days),
            dry_run=args.dry_run,
        )
    if args.json:
        _print_json(report.model_dump(mode="json") | {"dry_run": args.dry_run})
        return 0
    rows = [
        ("artifacts of old unaliased versions", report.artifacts),
        ("checkpoints", report.checkpoints),
        ("handled event ids", report.handled_events),
        ("relayed outbox rows", report.outbox),
    ]
    if args.dry_run:
        print_table("gc --dry-run: would remove", ("what", "would remove"), rows)
    else:
        print_table("gc: removed", ("what", "removed"), rows)
    return 0


def reproduce_cmd(args: argparse.Namespace) -> int:
    """Re-read a trainer version's offset ranges, refit it, compare rows, metrics and hash.

    Exit 0 when everything matches, 1 when something differs or the data has left the
    topic's retention.
    """
    from services.common.errors import DataExpired
    from services.trainer.replay import read_ranges
    from services.trainer.reproduce import NotReproducible, reproduce

    with _registry() as (settings, registry):
        try:
            report = reproduce(
                registry,
                model=args.name,
                version=args.version,
                read=lambda stream, ranges: read_ranges(settings, stream, ranges),
            )
        except DataExpired as exc:
            return _error(
                f"cannot reproduce {args.name} v{args.version}: its training data has left "
                f"the topic's retention ({exc})"
            )
        except NotReproducible as exc:
            return _error(str(exc))
    if args.json:
        _print_json(
            {
                "model": report.model,
                "version": report.version,
                "candidate": report.candidate,
                "same": report.same,
                "checks": [c.__dict__ for c in report.checks],
            }
        )
    else:
        rows = [
            (
                c.name,
                _text(c.recorded),
                _text(c.reproduced),
                "same" if c.same else "DIFFERENT" if c.decisive else "differs (not decisive)",
            )
            for c in report.checks
        ]
        print_table(
            f"reproduce {report.model} v{report.version} ({report.candidate})",
            ("check", "recorded", "reproduced", "result"),
            rows,
        )
    if not report.same:
        different = ", ".join(c.name for c in report.checks if c.decisive and not c.same)
        return _error(f"{args.name} v{args.version} did not reproduce: {different} differ")
    return 0
