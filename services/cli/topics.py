"""``driftline topics create|list``: the topic catalogue on the broker."""

from __future__ import annotations

import argparse
from typing import Any

from schemas import Topics
from services.common.kafka_client import ensure_topics, make_admin
from services.common.settings import DriftlineSettings
from services.console.output import print_table


def register(sub: Any) -> None:
    """Add the ``topics`` command group."""
    parser = sub.add_parser("topics", help="create or list driftline's topics")
    cmds = parser.add_subparsers(dest="topics_cmd", metavar="SUBCOMMAND", required=True)
    create = cmds.add_parser("create", help="create missing topics, fix configs (idempotent)")
    create.add_argument("--json", action="store_true", help="machine-readable output")
    create.set_defaults(func=create_cmd)
    show = cmds.add_parser("list", help="the catalogue: topics, keys, partitions, cleanup")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(func=list_cmd)


def create_cmd(args: argparse.Namespace) -> int:
    """Create or update every catalogue topic under the configured prefix."""
    settings = DriftlineSettings.load()
    admin = make_admin(settings)
    try:
        changes = ensure_topics(admin, Topics(settings.topic_prefix).all())
    finally:
        admin.close()
    rows = [(c.topic, c.action, c.detail) for c in changes]
    print_table(
        f"topics on {settings.bootstrap}", ("topic", "action", "detail"), rows, as_json=args.json
    )
    return 1 if any(c.action == "warning" for c in changes) else 0


def list_cmd(args: argparse.Namespace) -> int:
    """Print the catalogue under the configured prefix (no broker needed)."""
    settings = DriftlineSettings.load()
    rows = [
        (
            name,
            " | ".join(c.__name__ for c in spec.event_classes),
            spec.key,
            spec.partitions,
            spec.cleanup,
            spec.description,
        )
        for name, spec in Topics(settings.topic_prefix).all().items()
    ]
    columns = ("topic", "events", "key", "partitions", "cleanup", "description")
    print_table("driftline topics", columns, rows, as_json=args.json)
    return 0
