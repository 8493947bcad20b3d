"""The demo's baselines as a job: ``python -m services.demo.baselines_job --out FILE ...``.

Runs beside the services (supervised like them, so Ctrl-C stops it too) and writes each
baseline's per-example scores and predictions as JSON, for the report. The baselines
learn exactly the rows the loop learns: the rows the demo sends malformed (to show the
dead-letter path) are left out, and are unscored (``None``) at their stream index.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from services.common.logs import configure_logging
from services.demo.baselines import BaselineResult, baselines_for, run_baseline
from services.demo.stream import DriftPoint, is_malformed, load_stream
from services.ingest.sources import Columns

log = logging.getLogger(__name__)


def stream_args(
    dataset: str | None,
    config: Path | None,
    quick: bool,
    seed: int,
    columns: Columns | None = None,
    drifts: tuple[DriftPoint, ...] = (),
) -> list[str]:
    """The command-line arguments that make this job load the same stream."""
    args = ["--seed", str(seed)]
    if quick:
        args.append("--quick")
    if dataset is not None:
        args += ["--dataset", dataset]
    if config is not None:
        args += ["--config", str(config)]
    for flag, value in (
        ("--label-column", columns and columns.label),
        ("--id-column", columns and columns.id),
        ("--time-column", columns and columns.time),
    ):
        if value:
            args += [flag, value]
    if drifts:
        args += ["--drift-at", ",".join(str(d.position) for d in drifts)]
    return args


def dump(results: list[BaselineResult]) -> dict[str, Any]:
    """Results as JSON-ready data."""
    return {
        r.key: {
            "name": r.name,
            "seconds": r.seconds,
            "metric": r.metric,
            "scores": list(r.scores),
            "predictions": list(r.predictions),
        }
        for r in results
    }


def load(path: Path) -> list[BaselineResult]:
    """Results written by this job."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return [
        BaselineResult(
            key,
            item["name"],
            tuple(item["scores"]),
            item["seconds"],
            metric=item["metric"],
            predictions=tuple(item["predictions"]),
        )
        for key, item in data.items()
    ]


def at_stream_index(result: BaselineResult, kept: list[int], size: int) -> BaselineResult:
    """``result`` (scored on the kept rows) laid out by stream index, None elsewhere."""
    scores: list[float | None] = [None] * size
    predictions: list[Any] = [None] * size
    for row, index in enumerate(kept):
        scores[index] = result.scores[row]
        predictions[index] = result.predictions[row]
    return BaselineResult(
        result.key,
        result.name,
        tuple(scores),
        result.seconds,
        metric=result.metric,
        predictions=tuple(predictions),
    )


def main(argv: list[str] | None = None) -> int:
    """Score every baseline on the stream and write the results to ``--out``."""
    parser = argparse.ArgumentParser(prog="python -m services.demo.baselines_job")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--dataset")
    parser.add_argument("--config", type=Path)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--label-column")
    parser.add_argument("--id-column")
    parser.add_argument("--time-column")
    parser.add_argument("--drift-at")
    args = parser.parse_args(argv)
    configure_logging("baselines", level="INFO")
    stream = load_stream(
        args.dataset,
        args.config,
        quick=args.quick,
        seed=args.seed,
        columns=Columns(id=args.id_column, label=args.label_column, time=args.time_column),
        drift_at=args.drift_at,
    )
    kept = [i for i in range(stream.size) if not is_malformed(i)]
    every = list(stream.rows())
    rows = [every[i] for i in kept]
    results = []
    done: dict[str, Any] = {}
    # cheapest first: each finished one is in the report even if the demo stops early
    order = ("majority", "mean", "static_hgb", "river_lr", "river_ddm", "river_hat", "river_arf")
    keys = sorted(baselines_for(stream.config.spec), key=order.index)
    for key in keys:
        result = run_baseline(key, rows, stream.config.spec, seed=args.seed)
        results.append(at_stream_index(result, kept, stream.size))
        done = dump(results)
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(done), encoding="utf-8")
        tmp.replace(args.out)  # each finished baseline is kept, even if the demo stops early
        log.info("%s: %.4f in %.1fs", key, results[-1].value() or 0.0, results[-1].seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
