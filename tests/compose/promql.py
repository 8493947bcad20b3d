"""What the provisioned Grafana dashboard and the Prometheus alert rules ask of the metrics:
their expressions, the metric names in them, and the dashboard's queries made runnable
(template variables filled in) against a real Prometheus."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
# Panels whose queries must return data after a short demo: rates, served accuracy, drift,
# versions, dead letters (a panel passes when one of its queries does).
CORE_PANELS = (
    "Services up",
    "Throughput (events/s)",
    "Rolling $metric",
    "Drift events (range)",
    "Drift events",
    "Model versions",
    "Dead-letter rate (events/s)",
)
_NAME_REGEX = re.compile(r'__name__\s*=~\s*"([^"]+)"')
_NAME = re.compile(r"(?<![\w.])(driftline_[a-z0-9_]*[a-z0-9])(?![\w.(])")
# Grafana's variables, as a demo-length view of the dashboard would fill them
VARIABLES = {"$__range": "15m", "$__rate_interval": "1m", "$stream": ".*", "$metric": ""}


@dataclass(frozen=True)
class Query:
    """One PromQL expression and where it comes from."""

    origin: str  # "dashboard: <panel title>" or "alert: <name>"
    panel: str
    expr: str

    def names(self) -> set[str]:
        """Metric names the expression needs exist (``driftline_*`` identifiers).

        >>> sorted(Query("x", "p", 'rate(driftline_a_total{s="x"}[1m]) / driftline_b').names())
        ['driftline_a_total', 'driftline_b']
        """
        return set(_NAME.findall(_NAME_REGEX.sub("", self.expr)))

    def name_patterns(self) -> list[str]:
        """``__name__=~"..."`` matchers: at least one exposed name must match each.

        >>> Query("x", "p", 'rate({__name__=~"driftline_.+_total"}[1m])').name_patterns()
        ['driftline_.+_total']
        """
        return _NAME_REGEX.findall(self.expr)

    def runnable(self, metric: str) -> str:
        """The expression with the dashboard's variables filled in."""
        expr = self.expr
        for var, value in {**VARIABLES, "$metric": metric}.items():
            expr = expr.replace(var, value)
        return expr


def dashboard_queries(dashboards: Path = DASHBOARDS) -> list[Query]:
    """Every target expression of every provisioned dashboard, with its panel's title."""
    out: list[Query] = []

    def walk(panels: list[dict[str, object]]) -> None:
        for panel in panels:
            walk(panel.get("panels") or [])  # type: ignore[arg-type]
            title = str(panel.get("title", "?"))
            for target in panel.get("targets") or []:  # type: ignore[attr-defined]
                expr = target.get("expr")
                if expr:
                    out.append(Query(f"dashboard: {title}", title, str(expr)))

    for path in sorted(dashboards.glob("*.json")):
        walk(json.loads(path.read_text(encoding="utf-8")).get("panels", []))
    return out


def dashboard_variable_queries(dashboards: Path = DASHBOARDS) -> list[Query]:
    """The query of every query-type template variable (``label_values(metric, label)``)."""
    out = []
    for path in sorted(dashboards.glob("*.json")):
        for var in (
            json.loads(path.read_text(encoding="utf-8")).get("templating", {}).get("list", [])
        ):
            definition = str(var.get("definition") or "")
            match = re.fullmatch(r"label_values\((\w+),\s*\w+\)", definition)
            if var.get("type") == "query" and match:
                out.append(Query(f"variable: {var['name']}", var["name"], match.group(1)))
    return out


def alert_queries(path: Path = ALERTS) -> list[Query]:
    """Every alerting and recording rule's expression."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [
        Query(f"alert: {rule.get('alert') or rule.get('record')}", str(group["name"]), rule["expr"])
        for group in data.get("groups", [])
        for rule in group.get("rules", [])
    ]


def missing_names(queries: list[Query], exposed: set[str]) -> list[str]:
    """One line per name (or name pattern) a query needs and no scraped target exposes.

    >>> q = [Query("alert: A", "g", 'up + driftline_x_total + {__name__=~"driftline_.+_y"}')]
    >>> missing_names(q, {"driftline_x_total", "driftline_a_y"})
    []
    >>> missing_names(q, {"driftline_x_totals"})
    ['alert: A: driftline_x_total', 'alert: A: {__name__=~"driftline_.+_y"}']
    """
    problems = []
    for query in queries:
        problems += [f"{query.origin}: {n}" for n in sorted(query.names() - exposed)]
        for pattern in query.name_patterns():
            regex = re.compile(pattern)
            if not any(regex.fullmatch(name) for name in exposed):
                problems.append(f'{query.origin}: {{__name__=~"{pattern}"}}')
    return problems
