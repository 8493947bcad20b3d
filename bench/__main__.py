"""``python -m bench NAME [--quick]`` (or ``all``) runs benchmarks."""

from __future__ import annotations

import argparse
import importlib
import sys

from bench.harness import emit
from services.common.logs import configure_logging

BENCHES = ("roundtrip", "validator", "learner")


def main(argv: list[str] | None = None) -> int:
    """Run the named benchmark(s); the last line printed is the JSON result."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("name", choices=(*BENCHES, "all"))
    parser.add_argument("--quick", action="store_true", help="a short run (CI)")
    args = parser.parse_args(argv)
    configure_logging("bench", level="WARNING")
    for name in BENCHES if args.name == "all" else (args.name,):
        module = importlib.import_module(f"bench.{name}")
        emit(module.run(args.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())
