"""The report of one demo run, from the topics the observer folded: the served model's
curve from the evaluator's ``served`` track, laid on the stream's index, beside the
baselines, the drifts, the swaps and the versions."""

from __future__ import annotations

from pathlib import Path

from services.demo import analysis, report
from services.demo.baselines_job import load as load_baselines
from services.demo.checks import Check
from services.demo.state import DemoState
from services.demo.stream import DemoStream


def valid_positions(state: DemoState) -> list[int]:
    """Stream index of the k-th valid example (the valid topic keeps the stream's order)."""
    return sorted(state.index_of[i] for i in state.valid_ids if i in state.index_of)


def stream_index(positions: list[int], count: int) -> int:
    """The stream index just after the ``count``-th valid example."""
    if not positions or count <= 0:
        return 0
    return positions[min(count, len(positions)) - 1] + 1


def served_curve(
    state: DemoState, positions: list[int], metric: str = "accuracy"
) -> analysis.Curve:
    """The served model's ``metric`` from the evaluator's ``served`` track (across swaps).

    The track counts the valid examples the evaluator scored with the champion of the
    moment; they run without a gap from the first champion to the end of the stream, so
    the k-th scored one is valid example ``skipped + k``.
    """
    snaps = sorted((s for s in state.served if s.role == "served"), key=lambda s: s.example_count)
    skipped = max(0, len(positions) - (snaps[-1].example_count if snaps else 0))
    rolling: list[tuple[int, float]] = []
    cumulative: list[tuple[int, int, float]] = []
    for snap in snaps:
        x = stream_index(positions, skipped + snap.example_count)
        value = snap.values.get(f"rolling_{metric}")
        if value is not None:
            rolling.append((x, value))
        total = snap.values.get(metric)
        if total is not None:
            cumulative.append((x, snap.example_count, total * snap.example_count))
    window = snaps[-1].window if snaps else 1
    return analysis.Curve("driftline (served)", "served", tuple(rolling), window, tuple(cumulative))


def write_run_report(
    state: DemoState, source: DemoStream, run_dir: Path, elapsed_s: float, checks: list[Check]
) -> tuple[Path, list[analysis.SummaryRow]]:
    positions = valid_positions(state)
    metric = "accuracy" if source.config.spec.label.kind == "class" else "mae"
    served = served_curve(state, positions, metric)
    baselines_file = run_dir / "baselines.json"
    baselines = load_baselines(baselines_file) if baselines_file.exists() else []
    aliases: dict[int, list[str]] = {}
    for name in ("champion", "challenger", "online"):
        version = state.alias(name)
        if version is not None:
            aliases.setdefault(version, []).append(name)
    data = analysis.build_report(
        source,
        baselines,
        served=served,
        drift_events=[
            d.model_copy(update={"example_count": stream_index(positions, d.example_count)})
            for d in state.drifts
        ],
        swaps=[
            (move, state.first_answer[move.to_version])
            for move in state.alias_moves
            if move.alias == "champion"
            and move.to_version is not None
            and move.to_version in state.first_answer
        ],
        versions=[state.versions[v] for v in sorted(state.versions)],
        aliases={v: ", ".join(names) for v, names in aliases.items()},
        metadata=(
            ("run directory", str(run_dir)),
            ("duration", f"{elapsed_s:,.0f} s"),
            ("examples produced", f"{state.produced:,}"),
            ("valid / rejected", f"{len(state.valid_ids):,} / {len(state.rejected_ids):,}"),
            ("dead letters", ", ".join(f"{r} {n}" for r, n in state.dead_reasons.items())),
            ("drift events", str(len(state.drifts))),
            ("promotions", str(len(state.promotions()))),
            ("swaps seen by serving", str(len(state.swaps()))),
            *(
                (
                    f"check: {c.name}",
                    ("ok: " if c.ok else "FAILED: " if c.required else "WARNING: ") + c.detail,
                )
                for c in checks
            ),
        ),
    )
    path = report.write_report(run_dir / "report.html", data)
    return path, analysis.summarize_data(data)
