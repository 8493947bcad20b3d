"""Readable tables for people, ``--json`` for scripts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text


def print_table(
    title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, as_json: bool = False
) -> None:
    """Print rows as a rich table, or as a JSON list of objects."""
    if as_json:
        print(json.dumps([dict(zip(columns, row, strict=True)) for row in rows], default=str))
        return
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    Console().print(table)


class RateColumn(ProgressColumn):
    """The live rate of a task, in items per second."""

    def render(self, task: Task) -> Text:
        """The task's current speed, or a dash before there is one."""
        speed = task.finished_speed or task.speed
        return Text("--/s" if speed is None else f"{speed:,.0f}/s", style="progress.data.speed")


def progress_bar(console: Console | None = None) -> Progress:
    """A progress bar with count, live rate and elapsed time, for long CLI work."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        console=console or Console(),
    )
