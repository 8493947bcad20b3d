"""``driftline models``: model versions, aliases, lineage and the fleet from the command line.

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
from typing import Any

from rich.console import Console

from schemas import AliasReason
from services.cli.fleet import fleet_cmd
from services.cli.record_text import print_json, text, version_label, when
from services.cli.registry_access import (
    actor,
    error,
    model_or_none,
    open_registry,
    publish_moves,
)
from services.console.output import print_table
from services.registry.client import AliasMove, ModelInfo, ModelVersion
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


def version_arg(text: str) -> int:
    """A version number argument (``none`` is refused here)."""
    number = expect_version(text)
    if number is None:
        raise argparse.ArgumentTypeError("a version number is needed here")
    return number


def at_least(kind: type[int] | type[float], least: int = 0) -> Any:
    """An argument type: a number of ``kind`` no smaller than ``least``."""

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
    """Add the ``models`` command."""
    parser = sub.add_parser("models", help="model versions, aliases, lineage and the fleet")
    cmds = parser.add_subparsers(dest="models_cmd", metavar="SUBCOMMAND", required=True)

    def read(name: str, help_text: str) -> argparse.ArgumentParser:
        cmd: argparse.ArgumentParser = cmds.add_parser(name, help=help_text)
        cmd.add_argument("--json", action="store_true", help="machine-readable output")
        return cmd

    read("list", "every model with its aliases").set_defaults(func=list_cmd)

    show = read("show", "a model: its aliases and versions")
    show.add_argument("name")
    show.add_argument("--limit", type=at_least(int, 1), default=20, help="newest N versions (20)")
    show.set_defaults(func=show_cmd)

    diff = read("diff", "compare two versions: params, metrics, lineage, algorithm, spec")
    diff.add_argument("name")
    diff.add_argument("v1", type=version_arg)
    diff.add_argument("v2", type=version_arg)
    diff.set_defaults(func=diff_cmd)

    lineage = read("lineage", "the exact Kafka data a version learned from")
    lineage.add_argument("name")
    lineage.add_argument("version", type=version_arg)
    lineage.set_defaults(func=lineage_cmd)

    fleet = read("fleet", "what each serving replica loaded, from the models.acks topic")
    fleet.add_argument("--model", help="only this model")
    fleet.set_defaults(func=fleet_cmd)

    reproduce = read("reproduce", "rebuild a trainer version from its lineage and compare")
    reproduce.add_argument("name")
    reproduce.add_argument("version", type=version_arg)
    reproduce.set_defaults(func=reproduce_cmd)

    expect_help = "compare-and-set: the version the alias points at now ('none': unset)"
    promote = cmds.add_parser("promote", help="point an alias at a version (compare-and-set)")
    promote.add_argument("name")
    promote.add_argument("version", type=version_arg)
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


def _aliases(info: ModelInfo) -> str:
    return ", ".join(f"{a}={version_label(v)}" for a, v in sorted(info.aliases.items()))


def _metrics(metrics: dict[str, float], limit: int = 3) -> str:
    shown = [f"{k}={v:.4g}" for k, v in sorted(metrics.items())[:limit]]
    return ", ".join(shown) + (" …" if len(metrics) > limit else "")


# -- commands -------------------------------------------------------------------------------


def list_cmd(args: argparse.Namespace) -> int:
    """Every model with its latest version, aliases and frozen flag."""
    with open_registry() as (_, registry):
        models = registry.list_models()
    if args.json:
        print_json([m.model_dump(mode="json") for m in models])
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
    with open_registry() as (_, registry):
        info = model_or_none(registry, args.name)
        if info is None:
            return 1
        versions = registry.list_versions(model=args.name, limit=args.limit)
        moves: dict[str, AliasMove] = {}
        for move in registry.alias_history(model=args.name, limit=1000):
            moves.setdefault(move.alias, move)
    if args.json:
        print_json(
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
        [(version_label(info.latest_version), frozen)],
    )
    alias_rows = []
    for alias, version in sorted(info.aliases.items()):
        last = moves.get(alias)
        alias_rows.append(
            (
                alias,
                version_label(version),
                when(last.moved_at) if last else "",
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
            version_label(v.version),
            v.kind,
            v.algorithm,
            v.status,
            ", ".join(sorted(by_version.get(v.version, []))),
            _metrics(v.metrics),
            v.lineage.example_count,
            when(v.created_at),
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
        left, right = text(x), text(y)
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


def diff_cmd(args: argparse.Namespace) -> int:
    """Compare two versions of a model."""
    with open_registry() as (_, registry):
        found = [registry.get_version(model=args.name, version=v) for v in (args.v1, args.v2)]
    missing = [v for v, got in zip((args.v1, args.v2), found, strict=True) if got is None]
    if missing:
        return error(f"no version {args.name} {', '.join(version_label(v) for v in missing)}")
    a, b = found
    assert a is not None and b is not None  # noqa: S101 - checked just above
    rows = diff_rows(a, b)
    columns = ("field", version_label(args.v1), version_label(args.v2), "change")
    if args.json:
        print_json(
            [{"field": f, "a": x, "b": y, "changed": bool(c), "change": c} for f, x, y, c in rows]
        )
        return 0
    changed = sum(1 for row in rows if row[3])
    print_table(
        f"{args.name}: {version_label(args.v1)} vs {version_label(args.v2)} ({changed} differ)",
        columns,
        rows,
    )
    return 0


def lineage_cmd(args: argparse.Namespace) -> int:
    """The offset ranges, event-time range and example count a version learned from."""
    with open_registry() as (_, registry):
        found = registry.get_version(model=args.name, version=args.version)
    if found is None:
        return error(f"no version {args.name} {version_label(args.version)}")
    lineage = found.lineage
    if args.json:
        doc = lineage.model_dump(mode="json")
        for item, offsets in zip(doc["ranges"], lineage.ranges, strict=True):
            item["count"] = offsets.count
        print_json({"model": found.model, "version": found.version, "lineage": doc})
        return 0
    rows = [
        (r.topic, r.partition, f"[{r.start}, {r.end})", r.count)
        for r in sorted(lineage.ranges, key=lambda r: (r.topic, r.partition))
    ]
    print_table(
        f"{found.model} {version_label(found.version)}: offset ranges (half-open)",
        ("topic", "partition", "offsets", "count"),
        rows,
    )
    span = (
        f"{when(lineage.event_time_start) or '?'} .. {when(lineage.event_time_end) or '?'}"
        if lineage.event_time_start or lineage.event_time_end
        else "unknown"
    )
    Console().print(f"examples: {lineage.example_count}   event time: {span}")
    return 0


def promote_cmd(args: argparse.Namespace) -> int:
    """Compare-and-set an alias to a version, then publish the move."""
    with open_registry() as (settings, registry):
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
                actor=actor(),
                evidence=evidence,
            )
        except AliasConflict as exc:
            return _conflict(exc)
        except RegistryError as exc:
            return error(str(exc))
        Console().print(
            f"{move.model}@{move.alias}: "
            f"{version_label(move.from_version)} -> {version_label(move.to_version)}"
        )
        publish_moves(settings, registry)
    return 0


def rollback_cmd(args: argparse.Namespace) -> int:
    """Move an alias back to the version before its last move (compare-and-set)."""
    with open_registry() as (settings, registry):
        evidence: dict[str, Any] = {"operation": "rollback"}
        if args.reason:
            evidence["note"] = args.reason
        try:
            move = registry.rollback(
                model=args.name,
                alias=args.alias,
                expect=args.expect,
                actor=actor(),
                evidence=evidence,
                reason=AliasReason.MANUAL,
            )
        except AliasConflict as exc:
            return _conflict(exc)
        except RegistryError as exc:
            return error(str(exc))
        Console().print(
            f"{move.model}@{move.alias}: rolled back {version_label(move.from_version)} -> "
            f"{version_label(move.to_version)}"
        )
        publish_moves(settings, registry)
    return 0


def _conflict(exc: AliasConflict) -> int:
    now = "none" if exc.actual is None else str(exc.actual)
    return error(f"{exc} (nothing changed; to move it anyway, rerun with --expect {now})")


def freeze_cmd(args: argparse.Namespace) -> int:
    """Freeze a model: the learner, trainer and evaluator stop moving its aliases."""
    with open_registry() as (_, registry):
        try:
            info = registry.freeze(model=args.name, frozen=True, reason=args.reason)
        except NotFound as exc:
            return error(str(exc))
    Console().print(
        f"{info.name} is frozen: automatic alias moves are refused until "
        f"`driftline models unfreeze {info.name}` (manual promote and rollback still work)"
    )
    return 0


def unfreeze_cmd(args: argparse.Namespace) -> int:
    """Unfreeze a model: automatic alias moves resume."""
    with open_registry() as (_, registry):
        try:
            info = registry.freeze(model=args.name, frozen=False)
        except NotFound as exc:
            return error(str(exc))
    Console().print(f"{info.name} is unfrozen: automatic alias moves resume")
    return 0


def reproduce_cmd(args: argparse.Namespace) -> int:
    """Re-read a trainer version's offset ranges, refit it, compare rows, metrics and hash.

    Exit 0 when everything matches, 1 when something differs or the data has left the
    topic's retention.
    """
    from services.common.errors import DataExpired
    from services.trainer.replay import read_ranges
    from services.trainer.reproduce import NotReproducible, reproduce

    with open_registry() as (settings, registry):
        try:
            report = reproduce(
                registry,
                model=args.name,
                version=args.version,
                read=lambda stream, ranges: read_ranges(settings, stream, ranges),
            )
        except DataExpired as exc:
            return error(
                f"cannot reproduce {args.name} v{args.version}: its training data has left "
                f"the topic's retention ({exc})"
            )
        except NotReproducible as exc:
            return error(str(exc))
    if args.json:
        print_json(
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
                text(c.recorded),
                text(c.reproduced),
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
        return error(f"{args.name} v{args.version} did not reproduce: {different} differ")
    return 0
