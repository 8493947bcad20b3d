"""``driftline spec infer|publish|show|list``: stream configs.

``infer`` proposes a config from data (a file or a dataset) and writes it as YAML;
``publish`` validates YAML configs (files or directories of them), gives each the next
version of its stream and sends them to the compacted ``streams`` topic (unchanged configs
are not re-published unless ``--force``; see :mod:`services.ingest.spec_publish`); ``show``
prints the current config of a stream; ``list`` the streams.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from schemas import StreamConfig
from services.cli.produce import add_source_options, open_source, stream_name
from services.common.config_files import config_paths, config_to_yaml, read_config_files
from services.common.errors import ConfigError
from services.common.settings import DriftlineSettings
from services.console.output import print_table, progress_bar
from services.ingest.datasets import is_dataset
from services.ingest.infer import (
    DEFAULT_MARGIN,
    DEFAULT_MAX_CATEGORIES,
    DEFAULT_MAX_CLASSES,
    infer_config,
)
from services.ingest.sources import Record, csv_header, unnamed_columns
from services.ingest.spec_publish import (
    FAILED,
    PUBLISHED,
    UNCHANGED,
    Outcome,
    publish_configs,
    read_configs,
)

# Fields of a StreamConfig that a YAML file holds (the envelope is added on publish).
INFER_DEFAULT_ROWS = 100_000


def register(sub: Any) -> None:
    """Add the ``spec`` command group."""
    parser = sub.add_parser("spec", help="infer, publish and show stream configs")
    cmds = parser.add_subparsers(dest="spec_cmd", metavar="SUBCOMMAND", required=True)

    infer = cmds.add_parser(
        "infer",
        help="write a stream config inferred from a file or dataset",
        description=(
            "Infer a stream config from data: feature names and types, ranges widened by "
            "--margin, categories, nullability, label kind and classes, plus the default "
            "model and policy. Review it, then `driftline spec publish`."
        ),
    )
    infer.add_argument("source", help="FILE.csv, FILE.jsonl, river:NAME or synth:NAME")
    add_source_options(infer)
    infer.add_argument(
        "-o", "--output", default=None, help="where to write (default: STREAM.yaml; '-': stdout)"
    )
    infer.add_argument("--force", action="store_true", help="overwrite an existing file")
    infer.add_argument(
        "--margin",
        type=float,
        default=DEFAULT_MARGIN,
        help=f"ranges widened by this share of their span on each side (default: {DEFAULT_MARGIN})",
    )
    infer.add_argument(
        "--max-categories",
        type=int,
        default=DEFAULT_MAX_CATEGORIES,
        help="strings with more distinct values get no closed category set "
        f"(default: {DEFAULT_MAX_CATEGORIES})",
    )
    infer.add_argument(
        "--max-classes",
        type=int,
        default=DEFAULT_MAX_CLASSES,
        help="integer labels with more distinct values are numbers "
        f"(default: {DEFAULT_MAX_CLASSES})",
    )
    infer.set_defaults(func=infer_cmd)

    publish = cmds.add_parser(
        "publish",
        help="validate configs and publish each as the next version of its stream",
        description=(
            "Validate every config first (a bad file is named and nothing is published), "
            "read the streams topic once, publish each changed config as the next version "
            "of its stream, wait for the acknowledgements and record them in the registry."
        ),
    )
    publish.add_argument(
        "paths",
        nargs="+",
        type=Path,
        metavar="DIR|FILE",
        help="stream config files (YAML), or directories of *.yaml / *.yml files",
    )
    publish.add_argument(
        "--force", action="store_true", help="publish even when it equals the current version"
    )
    publish.add_argument("--json", action="store_true", help="machine-readable output")
    publish.set_defaults(func=publish_cmd)

    show = cmds.add_parser("show", help="print the current config of a stream")
    show.add_argument("stream", help="stream name")
    show.add_argument("--json", action="store_true", help="JSON instead of YAML")
    show.set_defaults(func=show_cmd)

    listing = cmds.add_parser("list", help="the published streams and their versions")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(func=list_cmd)


# -- infer --------------------------------------------------------------------------


def infer_cmd(args: argparse.Namespace) -> int:
    """Infer a config from the source and write it as YAML."""
    stream = stream_name(args)
    records, _total, limit = open_source(args)
    rows = (
        (r.features, r.label)
        for r in itertools.islice(records, limit or INFER_DEFAULT_ROWS)
        if isinstance(r, Record)
    )
    try:
        result = infer_config(
            stream,
            rows,
            margin=args.margin,
            max_categories=args.max_categories,
            max_classes=args.max_classes,
        )
    except ValueError as exc:
        raise ConfigError("source", f"{args.source}: {exc}") from exc
    notes = list(result.warnings)
    source = Path(args.source)
    if not is_dataset(args.source) and source.suffix.lower() == ".csv":
        notes = unnamed_columns(csv_header(source)) + notes
    header = [
        f"stream config inferred by `driftline spec infer` from {args.source} "
        f"({result.rows} rows) on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.",
        "Review ranges, categories and nullability, then: driftline spec publish FILE",
        *(f"warning: {w}" for w in notes),
    ]
    text = "".join(f"# {line}\n" for line in header) + config_to_yaml(result.config)
    output = args.output or f"{stream}.yaml"
    if output == "-":
        sys.stdout.write(text)
    else:
        path = Path(output)
        if path.exists() and not args.force:
            raise ConfigError("--output", f"{path} exists; use --force to overwrite it")
        path.write_text(text, encoding="utf-8")
        print(
            f"wrote {path}: {len(result.config.spec.features)} features, label "
            f"{result.config.spec.label.kind}, from {result.rows} rows"
        )
    for warning in notes:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


# -- publish ------------------------------------------------------------------------

# More configs to send than this, and publishing shows a progress bar.
PROGRESS_FROM = 20


def load_config_files(paths: Sequence[Path]) -> list[tuple[Path, StreamConfig]]:
    """The configs of ``paths`` (files and directories of ``*.yaml``/``*.yml``), all
    validated first: any bad file raises a ConfigError naming it, before anything is sent.
    A ``version`` in a file is ignored, with a note."""
    loaded = read_config_files(config_paths(list(paths)))
    for path, _config, had_version in loaded:
        if had_version:
            print(
                f"note: {path}: version is assigned on publish; the file's is ignored",
                file=sys.stderr,
            )
    return [(path, config) for path, config, _ in loaded]


def load_config_file(path: Path) -> StreamConfig:
    """A YAML stream config, validated (any ``version`` in the file is ignored, with a note)."""
    return load_config_files([path])[0][1]


def publish_cmd(args: argparse.Namespace) -> int:
    """Publish config files as the next versions of their streams; 1 if any send failed."""
    settings = DriftlineSettings.load()
    loaded = load_config_files(args.paths)  # all validated before anything is sent
    console = Console(stderr=True)
    started = time.perf_counter()
    with progress_bar(console) as progress:
        task = progress.add_task("spec publish", total=None, visible=False)

        def planned(n: int) -> None:
            progress.update(task, total=n, visible=n >= PROGRESS_FROM)

        outcomes = publish_configs(
            settings,
            [config for _, config in loaded],
            force=args.force,
            paths=[path for path, _ in loaded],
            on_planned=planned,
            on_acked=lambda n: progress.advance(task, n),
        )
    _print_published(args, outcomes, time.perf_counter() - started, console)
    return 1 if any(o.status == FAILED for o in outcomes) else 0


def _print_published(
    args: argparse.Namespace, outcomes: list[Outcome], elapsed_s: float, console: Console
) -> None:
    rows = [
        (
            o.config.stream,
            o.config.version,
            o.config.spec_sha256(),
            o.config.config_sha256(),
            o.message,
            None if o.path is None else str(o.path),
        )
        for o in outcomes
    ]
    columns = ("stream", "version", "spec_sha256", "config_sha256", "status", "file")
    print_table("spec publish", columns, rows, as_json=args.json)
    counts = Counter(o.status for o in outcomes)
    console.print(
        f"spec publish: {len(outcomes)} configs, {counts[PUBLISHED]} published, "
        f"{counts[UNCHANGED]} unchanged, {counts[FAILED]} failed in {elapsed_s:.1f}s",
        markup=False,
    )


# -- show, list ---------------------------------------------------------------------


def show_cmd(args: argparse.Namespace) -> int:
    """Print the current config of a stream (1 when none is published)."""
    settings = DriftlineSettings.load()
    configs = read_configs(settings)
    config = configs.get(args.stream)
    if config is None:
        known = ", ".join(sorted(configs)) or "none"
        print(
            f"no spec is published for stream {args.stream!r} (published: {known})", file=sys.stderr
        )
        return 1
    if args.json:
        print(json.dumps(config.model_dump(mode="json")))
        return 0
    print(
        f"# stream {config.stream} v{config.version}, published "
        f"{config.occurred_at.isoformat(timespec='seconds')}\n"
        f"# spec sha256 {config.spec_sha256()}\n# config sha256 {config.config_sha256()}"
    )
    sys.stdout.write(config_to_yaml(config))
    return 0


def list_cmd(args: argparse.Namespace) -> int:
    """Print every published stream with its current version."""
    settings = DriftlineSettings.load()
    rows = [
        (
            c.stream,
            c.version,
            len(c.spec.features),
            c.spec.label.kind,
            c.spec_sha256()[:12],
            c.occurred_at.isoformat(timespec="seconds"),
        )
        for c in sorted(read_configs(settings).values(), key=lambda c: c.stream)
    ]
    columns = ("stream", "version", "features", "label", "spec_sha256", "published")
    print_table("streams", columns, rows, as_json=args.json)
    return 0
