"""The ``driftline`` command: one entry point, one module per command group.

Each command module exposes ``register(subparsers)``, which adds its parser and sets
``func`` to a handler ``(args) -> int``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from services.common.errors import DriftlineError
from services.common.shutdown import GracefulShutdown


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every command group registered."""
    from services.cli import (
        broker,
        demo,
        dlq,
        gc,
        keys_cmd,
        models,
        produce,
        retrain,
        run,
        runs,
        schemas_cmd,
        spec,
        topics,
    )

    parser = argparse.ArgumentParser(
        prog="driftline", description="Event-driven retraining on Apache Kafka."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (
        broker,
        topics,
        schemas_cmd,
        run,
        demo,
        models,
        runs,
        gc,
        produce,
        spec,
        dlq,
        retrain,
        keys_cmd,
    ):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``driftline`` command line; returns the process exit code."""
    words = list(sys.argv[1:] if argv is None else argv)
    if len(words) >= 2 and words[0] == "run" and not words[1].startswith("-"):
        # a service: its signal handlers go in before the other commands are imported
        # (the service's bootstrap shares them), so SIGTERM at any moment stops it with 0
        with GracefulShutdown():
            from services.cli.run import run_service

            try:
                return run_service(words[1], words[2:])
            except DriftlineError as exc:
                print(f"driftline: error: {exc}", file=sys.stderr)
                return 2
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except DriftlineError as exc:
        print(f"driftline: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("driftline: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
