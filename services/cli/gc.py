"""``driftline gc``: remove old artifacts, checkpoints and handled ids from the registry."""

from __future__ import annotations

import argparse
from datetime import timedelta
from typing import Any

from services.cli.models import at_least
from services.cli.record_text import print_json
from services.cli.registry_access import open_registry
from services.console.output import print_table


def register(sub: Any) -> None:
    """Add the ``gc`` command."""
    gc = sub.add_parser("gc", help="remove old artifacts, checkpoints and handled ids")
    gc.add_argument(
        "--keep-versions",
        type=at_least(int),
        default=10,
        help="per model, keep the artifacts of the newest N versions (aliased ones always)",
    )
    gc.add_argument(
        "--keep-checkpoints",
        type=at_least(int),
        default=3,
        help="keep the newest N checkpoints of each owner and key",
    )
    gc.add_argument(
        "--handled-ttl-days",
        type=at_least(float),
        default=30.0,
        help="forget handled event ids older than this",
    )
    gc.add_argument(
        "--dry-run", action="store_true", help="count what would be removed, remove nothing"
    )
    gc.add_argument("--json", action="store_true", help="machine-readable output")
    gc.set_defaults(func=gc_cmd)


def gc_cmd(args: argparse.Namespace) -> int:
    """Garbage-collect the registry."""
    with open_registry() as (_, registry):
        report = registry.gc(
            keep_versions=args.keep_versions,
            keep_checkpoints=args.keep_checkpoints,
            handled_ttl=timedelta(days=args.handled_ttl_days),
            dry_run=args.dry_run,
        )
    if args.json:
        print_json(report.model_dump(mode="json") | {"dry_run": args.dry_run})
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
