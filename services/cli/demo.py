"""``driftline demo``: the whole loop on the embedded defaults (see ``services.demo.run``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from services.common.logs import configure_logging
from services.common.settings import DriftlineSettings
from services.demo.stream import DEFAULT_SEED
from services.ingest.sources import Columns


def register(sub: Any) -> None:
    """Add the ``demo`` command."""
    parser = sub.add_parser(
        "demo",
        help="run the whole loop on a drifting stream, live, and write an HTML report",
        description=(
            "Starts the local broker (unless DRIFTLINE_KAFKA_BOOTSTRAP is set) and every "
            "service, replays a drifting stream, shows the loop live and ends with a report."
        ),
    )
    parser.add_argument(
        "--quick", action="store_true", help="a shorter stream with the same drifts (CI)"
    )
    parser.add_argument(
        "--dataset",
        help="a CSV or JSONL file, or an offline River dataset such as river:Phishing, to "
        "replay instead of the default stream",
    )
    parser.add_argument(
        "--config",
        type=Path,
        help="the stream config (YAML) for --dataset (default: inferred, as spec infer does)",
    )
    parser.add_argument("--label-column", help="the file's label column (default: label)")
    parser.add_argument(
        "--id-column", help="the file's example id column (default: example_id, else row number)"
    )
    parser.add_argument(
        "--time-column", help="the file's event time column (default: event_time if present)"
    )
    parser.add_argument(
        "--drift-at",
        metavar="N[,N]",
        help="known drift points of --dataset (example indexes), for post-drift numbers",
    )
    parser.add_argument("--rate", type=float, help="examples per second to replay")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the default stream")
    parser.add_argument(
        "--keep-broker", action="store_true", help="leave a broker the demo started running"
    )
    parser.add_argument("--no-live", action="store_true", help="no live view (logs only)")
    parser.set_defaults(func=demo_cmd)


def demo_cmd(args: argparse.Namespace) -> int:
    """Run the demo; returns 0 when every end-of-run check passed."""
    from services.demo.run import DemoOptions, run_demo

    for flag in ("config", "label_column", "id_column", "time_column", "drift_at"):
        if getattr(args, flag) is not None and args.dataset is None:
            name = "--" + flag.replace("_", "-")
            print(f"driftline demo: error: {name} goes with --dataset", file=sys.stderr)
            return 2
    settings = DriftlineSettings.load()
    configure_logging("demo", fmt=settings.log_format, level="WARNING")
    console = Console()
    options = DemoOptions(
        quick=args.quick,
        dataset=args.dataset,
        config=args.config,
        rate=args.rate,
        keep_broker=args.keep_broker,
        live=not args.no_live and console.is_terminal,
        seed=args.seed,
        columns=Columns(id=args.id_column, label=args.label_column, time=args.time_column),
        drift_at=args.drift_at,
    )
    try:
        return run_demo(settings, options, console)
    except ValueError as exc:  # the stream's own checks: a bad --dataset, rows, drift points
        print(f"driftline demo: error: {exc}", file=sys.stderr)
        return 2
