"""``driftline run serving`` / ``python -m services.serving``: wiring only.

Settings, logging, then :func:`services.serving.app.serve` until SIGTERM or SIGINT
(stops within 1 s, exit 0). A bad setting exits 2 naming it; a broker that cannot be
reached at start-up exits 1.

After an orderly stop (requests answered, producer flushed, offsets committed, logs
flushed) the process ends with ``os._exit``: the interpreter's own teardown of the
River / scikit-learn / numpy modules took 0.3-0.7 s of the 1 s budget and does nothing
a stopped replica needs.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from services.common.errors import ConfigError, DriftlineError
from services.common.logs import configure_logging
from services.common.settings import DriftlineSettings
from services.serving.app import serve
from services.serving.settings import ServingSettings

log = logging.getLogger("services.serving")


def build_parser() -> argparse.ArgumentParser:
    """Arguments of the service; each overrides its ``DRIFTLINE_SERVING_*`` setting."""
    parser = argparse.ArgumentParser(
        prog="driftline run serving",
        description="Serve hot-swapped model versions over HTTP and Kafka.",
    )
    parser.add_argument("--host", help="bind address (DRIFTLINE_SERVING_HOST)")
    parser.add_argument("--port", type=int, help="port, 0 for any (DRIFTLINE_SERVING_PORT)")
    parser.add_argument(
        "--models", help="comma-separated models to serve (DRIFTLINE_SERVING_MODELS)"
    )
    parser.add_argument("--pins", help="model:version pins (DRIFTLINE_SERVING_PINS)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT; returns the exit code."""
    args = build_parser().parse_args(argv)
    overrides = {
        k: v
        for k, v in (
            ("host", args.host),
            ("port", args.port),
            ("models", args.models),
            ("pins", args.pins),
        )
        if v is not None
    }
    try:
        settings = DriftlineSettings.load()
        service = ServingSettings.load(**overrides)
    except ConfigError as exc:
        sys.stderr.write(f"driftline serving: error: {exc}\n")
        return 2
    configure_logging("serving", fmt=settings.log_format, level=settings.log_level)
    for name in ("uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).addFilter(_drop_color)
    try:
        code = serve(settings, service)
    except ConfigError as exc:
        sys.stderr.write(f"driftline serving: error: {exc}\n")
        return 2
    except DriftlineError as exc:
        log.error("serving failed: %s", exc)
        return 1
    _exit_now(code)


def _exit_now(code: int) -> NoReturn:
    """End the process without the interpreter's teardown (everything is flushed)."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _drop_color(record: logging.LogRecord) -> bool:
    """uvicorn adds a terminal-coloured copy of some messages; our formatters want one."""
    record.__dict__.pop("color_message", None)
    return True


if __name__ == "__main__":
    sys.exit(main())
