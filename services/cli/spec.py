"""``driftline spec infer|publish|show|list``: stream configs.

``infer`` proposes a config from data (a file or a dataset) and writes it as YAML;
``publish`` validates a YAML config, gives it the next version of its stream and sends
it to the compacted ``streams`` topic (unchanged configs are not re-published unless
``--force``); ``show`` prints the current config of a stream; ``list`` the streams.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from schemas import StreamConfig, Topics
from services.cli.output import print_table
from services.cli.produce import add_source_options, open_source, stream_name
from services.common.codec import encode
from services.common.config_files import config_to_yaml, read_config_file
from services.common.errors import ConfigError, DriftlineError
from services.common.kafka_client import make_producer
from services.common.settings import DriftlineSettings
from services.common.stream_configs import StreamConfigs
from services.ingest.infer import (
    DEFAULT_MARGIN,
    DEFAULT_MAX_CATEGORIES,
    DEFAULT_MAX_CLASSES,
    infer_config,
)
from services.ingest.sources import Record
from services.registry.client import Registry

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
        "publish", help="validate a config and publish it as the next version of its stream"
    )
    publish.add_argument("file", type=Path, help="the stream config (YAML)")
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
    header = [
        f"stream config inferred by `driftline spec infer` from {args.source} "
        f"({result.rows} rows) on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.",
        "Review ranges, categories and nullability, then: driftline spec publish FILE",
        *(f"warning: {w}" for w in result.warnings),
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
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


# -- publish ------------------------------------------------------------------------


def load_config_file(path: Path) -> StreamConfig:
    """A YAML stream config, validated (any ``version`` in the file is ignored, with a note)."""
    config, had_version = read_config_file(path)
    if had_version:
        print(
            f"note: {path}: version is assigned on publish; the file's is ignored", file=sys.stderr
        )
    return config


def read_configs(settings: DriftlineSettings) -> dict[str, StreamConfig]:
    """The latest config of every stream on the ``streams`` topic (tombstones honoured)."""
    configs = StreamConfigs(settings, client_id="driftline-spec")
    try:
        configs.catch_up()
        return configs.all()
    finally:
        configs.close()


def publish_cmd(args: argparse.Namespace) -> int:
    """Publish a config file as the next version of its stream."""
    settings = DriftlineSettings.load()
    config, status = publish_config(settings, load_config_file(args.file), force=args.force)
    _print_published(args, config, status)
    return 0


def publish_config(
    settings: DriftlineSettings, config: StreamConfig, *, force: bool = False
) -> tuple[StreamConfig, str]:
    """Publish ``config`` as the next version of its stream and record it in the registry.

    An unchanged config is not published again unless ``force``; returns the config in
    force and what happened.
    """
    current = read_configs(settings).get(config.stream)
    if current is not None and current.config_sha256() == config.config_sha256() and not force:
        return current, "unchanged (use --force to publish it again)"
    version = (current.version or 0) + 1 if current is not None else 1
    published = config.model_copy(update={"version": version})
    topic = Topics(settings.topic_prefix).name("streams")
    producer = make_producer(settings, client_id="driftline-spec")
    try:
        future = producer.send(topic, key=config.stream.encode(), value=encode(published))
        metadata = future.get(timeout=max(30.0, settings.kafka_timeout_s * 2))
        producer.flush()
    except Exception as exc:  # kafka-python's errors, named for the person
        raise DriftlineError(f"publishing to {topic} failed: {exc}") from exc
    finally:
        producer.close()
    record_published_spec(settings, published)
    return published, f"published to {topic} at offset {metadata.offset}"


def record_published_spec(settings: DriftlineSettings, config: StreamConfig) -> None:
    """Record a config in the registry once it is on the ``streams`` topic.

    Called by ``driftline spec publish`` after the broker acknowledged the config, so the
    registry holds every version seen: ``(stream, version, sha256)`` and the config.
    """
    registry = Registry.open(settings, relay=False)  # recording a spec publishes nothing
    try:
        registry.record_spec(config=config)
    finally:
        registry.close()


def _print_published(args: argparse.Namespace, config: StreamConfig, status: str) -> None:
    rows = [
        (
            config.stream,
            config.version,
            config.spec_sha256(),
            config.config_sha256(),
            status,
        )
    ]
    columns = ("stream", "version", "spec_sha256", "config_sha256", "status")
    print_table("spec publish", columns, rows, as_json=args.json)


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
