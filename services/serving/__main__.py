"""``driftline run serving`` / ``python -m services.serving``: wiring only.

Started by :mod:`services.common.bootstrap` (signals first, settings, logging, exit
codes), then :func:`services.serving.app.serve` until SIGTERM or SIGINT (stops within
1 s, exit 0). A bad setting exits 2 naming it; a broker that cannot be reached at
start-up exits 1.

After an orderly stop (requests answered, producer flushed, offsets committed, logs
flushed) the process ends with ``os._exit``: the interpreter's own teardown of the
River / scikit-learn / numpy modules took 0.3-0.7 s of the 1 s budget and does nothing
a stopped replica needs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from services.common import bootstrap


def build_parser() -> argparse.ArgumentParser:
    """Arguments of the service; each overrides its ``DRIFTLINE_SERVING_*`` setting."""
    parser = bootstrap.parser("serving", "Serve hot-swapped model versions over HTTP and Kafka.")
    parser.add_argument("--host", help="bind address (DRIFTLINE_SERVING_HOST)")
    parser.add_argument("--port", type=int, help="port, 0 for any (DRIFTLINE_SERVING_PORT)")
    parser.add_argument(
        "--models", help="comma-separated models to serve (DRIFTLINE_SERVING_MODELS)"
    )
    parser.add_argument("--pins", help="model:version pins (DRIFTLINE_SERVING_PINS)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT; returns the exit code."""
    return bootstrap.run("serving", start, argv=argv, arguments=build_parser(), exit_now=True)


def start(boot: bootstrap.Startup) -> int:
    """Serve one replica until the stop flag is set (its handlers share this one's)."""
    from services.serving.app import serve
    from services.serving.settings import ServingSettings

    args = boot.args
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
    service = ServingSettings.load(**overrides)
    bootstrap.quiet_uvicorn()
    # serve() installs handlers of its own at once (sharing this request, only setting the
    # flag), then stops in order; until then a signal ends the start-up where it is
    return serve(boot.settings, service)


if __name__ == "__main__":
    sys.exit(main())
