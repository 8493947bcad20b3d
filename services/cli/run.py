"""``driftline run NAME``: start one service.

Services plug in through the ``driftline.services`` entry-point group of the package:
``NAME = "module:function"``, where ``function(argv) -> int``.
"""

from __future__ import annotations

import argparse
from importlib.metadata import entry_points
from typing import Any

from services.common.errors import ConfigError

GROUP = "driftline.services"


def available() -> dict[str, Any]:
    """Installed services by name."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def register(sub: Any) -> None:
    """Add the ``run`` command."""
    names = ", ".join(sorted(available())) or "none installed yet"
    parser = sub.add_parser("run", help=f"start one service ({names})")
    parser.add_argument("name", help="service name")
    parser.add_argument("service_args", nargs=argparse.REMAINDER, help="the service's arguments")
    parser.set_defaults(func=run_cmd)


def run_cmd(args: argparse.Namespace) -> int:
    """Load the named service's entry point and hand it the remaining arguments."""
    return run_service(args.name, list(args.service_args))


def run_service(name: str, argv: list[str]) -> int:
    """Start the service ``name`` (its ``main(argv)``: the bootstrap); returns its exit code."""
    services = available()
    if name not in services:
        known = ", ".join(sorted(services)) or "none installed"
        raise ConfigError("service", f"unknown service {name!r} (available: {known})")
    main = services[name].load()
    code: int = main(argv)
    return code
