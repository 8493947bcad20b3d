"""The demo's baselines as a job: ``python -m services.demo.baselines_job --out FILE ...``.

Runs beside the services (supervised like them, so Ctrl-C stops it too) and writes each
baseline's per-example correctness as JSON, for the report.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from services.common.logs import configure_logging
from services.demo.baselines import BaselineResult, run_baseline
from services.demo.stream import load_stream

log = logging.getLogger(__name__)


def stream_args(dataset: str | None, config: Path | None, quick: bool, seed: int) -> list[str]:
    """The command-line arguments that make this job load the same stream."""
    args = ["--seed", str(seed)]
    if quick:
        args.append("--quick")
    if dataset is not None:
        args += ["--dataset", dataset]
    if config is not None:
        args += ["--config", str(config)]
    return args


def dump(results: list[BaselineResult]) -> dict[str, Any]:
    """Results as JSON-ready data."""
    return {
        r.key: {"name": r.name, "seconds": r.seconds, "correct": list(r.correct)} for r in results
    }


def load(path: Path) -> list[BaselineResult]:
    """Results written by this job."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return [
        BaselineResult(key, item["name"], tuple(item["correct"]), item["seconds"])
        for key, item in data.items()
    ]


def main(argv: list[str] | None = None) -> int:
    """Score every baseline on the stream and write the results to ``--out``."""
    parser = argparse.ArgumentParser(prog="python -m services.demo.baselines_job")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--dataset")
    parser.add_argument("--config", type=Path)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seed", type=int, required=True)
    args = parser.parse_args(argv)
    configure_logging("baselines", level="INFO")
    stream = load_stream(args.dataset, args.config, quick=args.quick, seed=args.seed)
    rows = list(stream.rows())
    results = []
    done: dict[str, Any] = {}
    for key in ("static_hgb", "river_lr", "river_ddm", "river_arf"):
        results.append(run_baseline(key, rows, stream.config.spec, seed=args.seed))
        done = dump(results)
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(done), encoding="utf-8")
        tmp.replace(args.out)  # each finished baseline is kept, even if the demo stops early
        log.info("%s: %.4f in %.1fs", key, results[-1].accuracy() or 0.0, results[-1].seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
