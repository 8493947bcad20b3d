"""``python -m bench NAME [--quick] [--write PATH]`` (or ``all``) runs benchmarks."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from bench.harness import Result, emit
from bench.results import write
from services.common.logs import configure_logging

BENCHES = (
    "roundtrip",
    "validator",
    "learner",
    "fanout",
    "hotswap",
    "retrain",
    "restart",
    "storage",
    "quality",
    "fresh",
    "defaults",
)


def main(argv: list[str] | None = None) -> int:
    """Run the named benchmark(s); the last line printed is the JSON result."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("name", choices=(*BENCHES, "all"))
    parser.add_argument("--quick", action="store_true", help="a short run (CI)")
    parser.add_argument(
        "--write", type=Path, metavar="PATH", help="also write the results table (markdown)"
    )
    args = parser.parse_args(argv)
    configure_logging("bench", level="WARNING")
    results: list[Result] = []
    for name in BENCHES if args.name == "all" else (args.name,):
        module = importlib.import_module(f"bench.{name}")
        results.append(module.run(args.quick))
        emit(results[-1])
    if args.write is not None:
        write(args.write, results, quick=args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
