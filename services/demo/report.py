"""The demo's HTML report: one self-contained file, viewable with no network. Pure.

:func:`render_html` draws what :mod:`services.demo.analysis` computed from a
:class:`~services.demo.analysis.ReportData`: an inline SVG chart (no JavaScript, no
external CSS, fonts or images) of the curves with the drift, detection and swap markers,
and the summary, model-version and run tables.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path

from services.demo.analysis import (
    Curve,
    ModelVersionInfo,
    ReportData,
    SummaryRow,
    summarize_data,
)

__all__ = ["render_html", "write_report"]

_W, _H = 960, 400
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 20, 34, 44
_SERVED_COLOR = "#111111"
_PALETTE = ("#1f77b4", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f")
_DRIFT_COLOR = "#666666"
_DETECTED_COLOR = "#d62728"
_SWAP_COLOR = "#2ca02c"


def render_html(data: ReportData) -> str:
    """The whole report as one HTML document (inline SVG and CSS, no external resource)."""
    rows = summarize_data(data)
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(data.title)}: {e(data.stream)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{e(data.title)}</h1>",
        f'<p class="lead">Stream <b>{e(data.stream)}</b>, {data.size:,} examples. '
        f"{e(data.description)}</p>",
        f"<h2>{'Accuracy' if data.metric == 'accuracy' else e(data.metric.upper())} "
        "over the stream</h2>",
        _chart(data),
        _legend(data),
        "<h2>Summary</h2>",
        _summary_table(rows, data),
        "<h2>Model versions</h2>",
        _versions_table(data.versions),
        "<h2>Run</h2>",
        _metadata_table(data),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def write_report(path: Path, data: ReportData) -> Path:
    """Write the report to ``path`` (parents created) and return it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(data), encoding="utf-8")
    return path


_CSS = (
    "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;"
    "max-width:1000px;color:#222;padding:0 1em}"
    "h1{font-size:1.6em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}"
    "table{border-collapse:collapse;font-size:.9em;margin:.5em 0}"
    "th,td{border:1px solid #ddd;padding:.3em .6em;text-align:left;vertical-align:top}"
    "th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}"
    "tr.served td{font-weight:600}.lead{color:#444}.note{color:#666;font-size:.85em}"
    ".legend span{display:inline-block;margin-right:1.2em;font-size:.9em}"
    ".legend i{display:inline-block;width:1.4em;height:.25em;vertical-align:middle;"
    "margin-right:.4em}svg text{font-family:inherit;font-size:11px;fill:#444}"
)


def _colors(curves: Sequence[Curve]) -> list[str]:
    colors = []
    k = 0
    for curve in curves:
        if curve.role == "served":
            colors.append(_SERVED_COLOR)
        else:
            colors.append(_PALETTE[k % len(_PALETTE)])
            k += 1
    return colors


def _nice_step(span: float, ticks: int = 8) -> int:
    raw = max(1.0, span / ticks)
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if factor * power >= raw:
            return int(factor * power)
    return int(10 * power)


def _chart(data: ReportData) -> str:
    size = max(1, data.size)
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM

    def sx(x: float) -> float:
        return _LEFT + plot_w * min(max(x, 0.0), size) / size

    top = _y_top(data)

    def sy(y: float) -> float:
        return _TOP + plot_h * (1.0 - min(max(y / top, 0.0), 1.0))

    e = html.escape
    out = [
        f'<svg id="chart" viewBox="0 0 {_W} {_H}" width="100%" role="img" '
        f'aria-label="rolling accuracy against example index">',
        f'<rect x="{_LEFT}" y="{_TOP}" width="{plot_w}" height="{plot_h}" fill="#fff" '
        'stroke="#ccc"/>',
    ]
    for k in range(6):
        y = top * k / 5
        tick = f"{y:.0%}" if data.metric == "accuracy" else f"{y:.3g}"
        out.append(
            f'<line x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" '
            'stroke="#eee"/>'
            f'<text x="{_LEFT - 6}" y="{sy(y) + 4:.1f}" text-anchor="end">{tick}</text>'
        )
    step = _nice_step(size)
    for x in range(0, size + 1, step):
        out.append(
            f'<line x1="{sx(x):.1f}" x2="{sx(x):.1f}" y1="{_TOP + plot_h}" '
            f'y2="{_TOP + plot_h + 4}" stroke="#999"/>'
            f'<text x="{sx(x):.1f}" y="{_TOP + plot_h + 16}" text-anchor="middle">{x:,}</text>'
        )
    out.append(
        f'<text x="{_LEFT + plot_w / 2:.0f}" y="{_H - 6}" text-anchor="middle">example index</text>'
    )
    for drift in data.drifts:
        label = f"{drift.kind} drift at {drift.position:,}"
        if drift.kind == "gradual" and drift.width > 1:
            out.append(
                f'<rect class="true-drift" x="{sx(drift.start):.1f}" y="{_TOP}" '
                f'width="{max(1.0, sx(drift.end) - sx(drift.start)):.1f}" height="{plot_h}" '
                f'fill="{_DRIFT_COLOR}" fill-opacity="0.12"><title>{e(label)} '
                f"(over {drift.width:,} examples)</title></rect>"
            )
        out.append(
            f'<line class="true-drift" x1="{sx(drift.position):.1f}" '
            f'x2="{sx(drift.position):.1f}" y1="{_TOP}" y2="{_TOP + plot_h}" '
            f'stroke="{_DRIFT_COLOR}" stroke-dasharray="6 4" stroke-width="1.5">'
            f"<title>{e(label)}</title></line>"
            f'<text x="{sx(drift.position) + 4:.1f}" y="{_TOP - 6}">{e(label)}</text>'
        )
    for curve, color in zip(data.curves, _colors(data.curves), strict=True):
        if not curve.rolling:
            continue
        points = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in curve.rolling)
        width = 2.5 if curve.role == "served" else 1.5
        out.append(
            f'<polyline class="curve" points="{points}" fill="none" stroke="{color}" '
            f'stroke-width="{width}" stroke-linejoin="round"><title>{e(curve.name)}</title>'
            "</polyline>"
        )
    for marker in data.detected:
        at = sx(marker.index)
        out.append(
            f'<g class="detected-drift"><title>{e(marker.detail or marker.label)} '
            f"(example {marker.index:,})</title>"
            f'<line x1="{at:.1f}" x2="{at:.1f}" y1="{_TOP}" y2="{_TOP + plot_h}" '
            f'stroke="{_DETECTED_COLOR}" stroke-dasharray="2 3"/>'
            f'<path d="M{at - 5:.1f},{_TOP} L{at + 5:.1f},{_TOP} L{at:.1f},{_TOP + 8}Z" '
            f'fill="{_DETECTED_COLOR}"/></g>'
        )
    for marker in data.swaps:
        at = sx(marker.index)
        out.append(
            f'<g class="swap"><title>{e(marker.detail or marker.label)} '
            f"(example {marker.index:,})</title>"
            f'<line x1="{at:.1f}" x2="{at:.1f}" y1="{_TOP}" y2="{_TOP + plot_h}" '
            f'stroke="{_SWAP_COLOR}" stroke-width="1.5"/>'
            f'<text x="{at + 3:.1f}" y="{_TOP + plot_h - 6}" style="fill:{_SWAP_COLOR}">'
            f"{e(marker.label)}</text></g>"
        )
    out.append("</svg>")
    return "\n".join(out)


def _y_top(data: ReportData) -> float:
    """The chart's top value: 1 for accuracy, above the largest value for an error."""
    if data.metric == "accuracy":
        return 1.0
    values = [v for curve in data.curves for _, v in curve.rolling if math.isfinite(v)]
    return max(values) * 1.1 if values and max(values) > 0 else 1.0


def _legend(data: ReportData) -> str:
    e = html.escape
    items = [
        f'<span><i style="background:{color}"></i>{e(curve.name)}'
        f"{' (served)' if curve.role == 'served' else ''}</span>"
        for curve, color in zip(data.curves, _colors(data.curves), strict=True)
    ]
    items += [
        f'<span><i style="background:{_DRIFT_COLOR}"></i>true drift</span>',
        f'<span><i style="background:{_DETECTED_COLOR}"></i>detected drift</span>',
        f'<span><i style="background:{_SWAP_COLOR}"></i>swap (served version)</span>',
    ]
    windows = sorted({c.window for c in data.curves})
    note = (
        f'<p class="note">Rolling {_name(data)} over the last '
        f"{', '.join(f'{w:,}' for w in windows)}"
        " examples, by example index in the stream.</p>"
    )
    return f'<div class="legend">{"".join(items)}</div>{note}'


def _name(data: ReportData) -> str:
    return "accuracy" if data.metric == "accuracy" else data.metric.upper()


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.4g}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _summary_table(rows: Sequence[SummaryRow], data: ReportData) -> str:
    e = html.escape
    fmt = _pct if data.metric == "accuracy" else _number
    drifts = sorted(data.drifts, key=lambda d: d.position)
    head = "".join(
        f"<th>recovery after {e(d.kind)} drift at {d.position:,} (examples)</th>" for d in drifts
    )
    body = []
    for row in rows:
        recovery = "".join(
            f'<td class="n">{"not recovered" if r is None else f"{r:,}"}</td>' for r in row.recovery
        )
        body.append(
            f'<tr class="{row.role}"><td>{e(row.name)}</td><td>{e(row.role)}</td>'
            f'<td class="n">{fmt(row.overall)}</td><td class="n">{fmt(row.post_drift)}</td>'
            f"{recovery}</tr>"
        )
    note = (
        '<p class="note">Post-drift: examples from the first drift on. Recovery: examples '
        "from a drift (the centre of a gradual one) to the first rolling window, entirely "
        f"after the transition, whose {_name(data)} is within {data.tolerance * 100:.0f} "
        f"{'points' if data.metric == 'accuracy' else '%'} of the model's own level just "
        "before it; not recovered when that does not happen "
        "before the next drift (nor after a drift it did not recover from).</p>"
        if drifts
        else ""
    )
    return (
        '<table id="summary"><thead><tr><th>model</th><th>role</th>'
        f"<th>overall {_name(data)}</th><th>post-drift {_name(data)}</th>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody>"
        f"</table>{note}"
    )


def _versions_table(versions: Sequence[ModelVersionInfo]) -> str:
    if not versions:
        return '<p class="note">No model version was recorded.</p>'
    e = html.escape
    body = []
    for v in sorted(versions, key=lambda v: v.version):
        metrics = ", ".join(f"{k} {val:.4g}" for k, val in sorted(v.metrics.items()))
        body.append(
            f'<tr><td class="n">v{v.version}</td><td>{e(v.kind)}</td><td>{e(v.algorithm)}</td>'
            f'<td class="n">{"" if v.parent is None else f"v{v.parent}"}</td>'
            f"<td>{e(v.aliases)}</td><td>{e(metrics)}</td>"
            f'<td class="n">{v.example_count:,}</td><td>{e(v.lineage)}</td></tr>'
        )
    return (
        '<table id="versions"><thead><tr><th>version</th><th>kind</th><th>algorithm</th>'
        "<th>parent</th><th>aliases</th><th>metrics</th><th>examples</th>"
        "<th>lineage (half-open offset ranges)</th></tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def _metadata_table(data: ReportData) -> str:
    e = html.escape
    items = [
        ("stream", data.stream),
        ("examples", f"{data.size:,}"),
        *(
            (f"true drift {k + 1}", f"{d.kind} at {d.position:,} (width {d.width:,})")
            for k, d in enumerate(data.drifts)
        ),
        ("detected drift events", str(len(data.detected))),
        ("swaps", str(len(data.swaps))),
        ("model versions", str(len(data.versions))),
        *data.metadata,
    ]
    body = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in items)
    return f'<table id="run"><tbody>{body}</tbody></table>'
