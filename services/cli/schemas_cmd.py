"""``driftline schemas export [--check]``: JSON Schemas for non-Python producers."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from schemas import export


def register(sub: Any) -> None:
    """Add the ``schemas`` command group."""
    parser = sub.add_parser("schemas", help="export the event contract as JSON Schema")
    cmds = parser.add_subparsers(dest="schemas_cmd", metavar="SUBCOMMAND", required=True)
    exp = cmds.add_parser("export", help="write schemas/json/*.json from the models")
    exp.add_argument("--dir", type=Path, default=export.JSON_DIR, help="output directory")
    exp.add_argument("--check", action="store_true", help="only report stale files; exit 1")
    exp.set_defaults(func=export_cmd)


def export_cmd(args: argparse.Namespace) -> int:
    """Write (or check) the JSON Schema files."""
    if args.check:
        stale = export.stale_files(args.dir)
        for name in stale:
            print(f"stale: {args.dir / name}", file=sys.stderr)
        return 1 if stale else 0
    changed = export.write(args.dir)
    print(f"{len(export.json_schemas())} schemas in {args.dir} ({len(changed)} changed)")
    return 0
