"""``python -m services.registry`` (``driftline run registry``): serve the registry's HTTP API.

Wiring only, started by :mod:`services.common.bootstrap` (signals first, settings,
logging, exit codes): the settings are checked here, then
:func:`services.registry.server.serve` runs the registry, its outbox relay, its warden
and uvicorn until SIGTERM or SIGINT (exit 0 within 10 s).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from services.common import bootstrap


def build_parser() -> argparse.ArgumentParser:
    """Arguments of the service; each overrides its ``DRIFTLINE_REGISTRY_*`` setting."""
    parser = bootstrap.parser("registry", "Serve the model registry's HTTP API.")
    parser.add_argument("--host", help="bind address (DRIFTLINE_REGISTRY_HOST)")
    parser.add_argument("--port", type=int, help="port, 0 for any (DRIFTLINE_REGISTRY_PORT)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the registry until SIGTERM/SIGINT; returns the exit code."""
    return bootstrap.run("registry", start, argv=argv, arguments=build_parser())


def start(boot: bootstrap.Startup) -> int:
    """Check the settings, then serve until the stop flag is set."""
    from sqlalchemy.exc import SQLAlchemyError

    from services.common.errors import ConfigError, DriftlineError
    from services.registry.server import serve
    from services.registry.settings import RegistrySettings

    args = boot.args
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = boot.settings
    service = RegistrySettings.load(**overrides)
    if settings.signing_key is None:
        raise ConfigError(
            "DRIFTLINE_SIGNING_KEY",
            "is required: the registry signs every model event it publishes",
        )
    bootstrap.quiet_uvicorn()
    if settings.log_level != "DEBUG":
        # Kafka serves only the relay here, which logs each outage once, with the setting.
        logging.getLogger("kafka").setLevel(logging.CRITICAL)
    try:
        return serve(boot, service)
    except SQLAlchemyError as exc:
        raise DriftlineError(f"the registry database failed: {exc}") from exc


if __name__ == "__main__":
    sys.exit(main())
