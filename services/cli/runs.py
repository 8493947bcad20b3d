"""``driftline runs list|show``: training runs and the candidates they tried."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from services.cli.models import at_least
from services.cli.record_text import print_json, text, version_label, when
from services.cli.registry_access import error, open_registry
from services.console.output import print_table


def register(sub: Any) -> None:
    """Add the ``runs`` command."""
    parser = sub.add_parser("runs", help="training runs and the candidates they tried")
    cmds = parser.add_subparsers(dest="runs_cmd", metavar="SUBCOMMAND", required=True)
    listing = cmds.add_parser("list", help="training runs, newest first")
    listing.add_argument("--model", help="only this model")
    listing.add_argument("--limit", type=at_least(int, 1), default=50, help="newest N runs (50)")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(func=runs_list_cmd)
    show = cmds.add_parser("show", help="one run with every candidate")
    show.add_argument("run_id")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(func=runs_show_cmd)


def runs_list_cmd(args: argparse.Namespace) -> int:
    """Training runs, newest first."""
    with open_registry() as (_, registry):
        runs = registry.list_runs(model=args.model, limit=args.limit)
    if args.json:
        print_json([r.model_dump(mode="json") for r in runs])
        return 0
    rows = [
        (
            r.id,
            r.model,
            r.status,
            version_label(r.winner_version) if r.winner_version else "",
            len(r.candidates),
            r.decision or "",
            when(r.started_at),
            when(r.finished_at),
        )
        for r in runs
    ]
    columns = ("run", "model", "status", "winner", "candidates", "decision", "started", "finished")
    print_table("training runs", columns, rows)
    return 0


def runs_show_cmd(args: argparse.Namespace) -> int:
    """One training run: trigger, window, champion, decision and every candidate."""
    with open_registry() as (_, registry):
        run = registry.get_run(run_id=args.run_id)
    if run is None:
        return error(f"no training run {args.run_id!r} (see `driftline runs list`)")
    if args.json:
        print_json(run.model_dump(mode="json"))
        return 0
    facts: Sequence[tuple[str, Any]] = [
        ("model", run.model),
        ("status", run.status),
        ("decision", run.decision or ""),
        ("winner", version_label(run.winner_version) if run.winner_version else ""),
        ("trigger event", run.trigger_event_id),
        ("trigger", text(run.trigger)),
        ("window", text(run.window)),
        ("champion", text(run.champion)),
        ("started", when(run.started_at)),
        ("finished", when(run.finished_at)),
    ]
    print_table(f"run {run.id}", ("field", "value"), facts)
    rows = [
        (
            c.name,
            version_label(c.version) if c.version else "",
            f"{c.fit_s:.2f}",
            text(c.metrics),
            text(c.params),
            c.note or "",
        )
        for c in run.candidates
    ]
    print_table("candidates", ("candidate", "version", "fit s", "metrics", "params", "note"), rows)
    return 0
