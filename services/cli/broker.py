"""``driftline broker start|stop|status|logs|fetch``: the local development broker.

With ``DRIFTLINE_KAFKA_BOOTSTRAP`` set the broker is external: ``start`` only checks
that it answers, ``stop`` leaves it alone and ``fetch`` downloads nothing. Otherwise
the commands manage the single-node broker whose state lives in ``<data dir>/kafka``;
``status`` and ``stop`` find its ports there, so they take no flags.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import IO, Any

from services.common.errors import BrokerUnavailable
from services.common.kafka_client import client_config, wait_until_ready
from services.common.settings import DEFAULT_BOOTSTRAP, DriftlineSettings
from services.localbroker.config import KAFKA_VERSION
from services.localbroker.jars import cached_jars, ensure_jars, jars_dir
from services.localbroker.process import LocalBroker

_FOLLOW_POLL_S = 0.25
_STATUS_TIMEOUT_S = 5.0


def register(sub: Any) -> None:
    """Add the ``broker`` command group."""
    parser = sub.add_parser(
        "broker",
        help="start, stop or inspect the local Kafka broker",
        description=(
            f"The local development broker: a single-node Kafka {KAFKA_VERSION} (KRaft) on "
            "127.0.0.1 with its state in DRIFTLINE_DATA_DIR/kafka. When "
            "DRIFTLINE_KAFKA_BOOTSTRAP is set, that broker is used and nothing is started."
        ),
    )
    cmds = parser.add_subparsers(dest="broker_cmd", metavar="SUBCOMMAND", required=True)

    start = cmds.add_parser("start", help="start the broker unless it runs (idempotent)")
    start.add_argument(
        "--fresh", action="store_true", help="stop it and wipe every topic before starting"
    )
    start.add_argument(
        "--port", type=_port, default=None, help="client port (default: as last time, else 9092)"
    )
    start.add_argument(
        "--controller-port",
        type=_port,
        default=None,
        help="KRaft controller port (default: as last time, else PORT+1, so 9093)",
    )
    start.add_argument(
        "--timeout",
        type=_positive,
        default=90.0,
        metavar="SECONDS",
        help="how long to wait for the broker to answer (default: 90)",
    )
    start.set_defaults(func=start_cmd)

    stop = cmds.add_parser("stop", help="stop the broker (SIGTERM, SIGKILL after 30s)")
    stop.set_defaults(func=stop_cmd)

    status = cmds.add_parser("status", help="is it running? (exit code 1 when not)")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=status_cmd)

    logs = cmds.add_parser("logs", help="print the end of the broker's log")
    logs.add_argument("-n", "--lines", type=int, default=50, help="how many lines (default: 50)")
    logs.add_argument(
        "-f", "--follow", action="store_true", help="keep printing new lines (Ctrl-C ends)"
    )
    logs.set_defaults(func=logs_cmd)

    fetch = cmds.add_parser(
        "fetch", help=f"download the Kafka {KAFKA_VERSION} jars once (needs Java 17+ and Maven)"
    )
    fetch.set_defaults(func=fetch_cmd)


def start_cmd(args: argparse.Namespace) -> int:
    """Start the local broker, or check that the external one answers."""
    settings = DriftlineSettings.load()
    if not settings.uses_local_broker:
        wait_until_ready(
            settings.bootstrap,
            timeout_s=settings.kafka_timeout_s,
            probe_topic=None,
            client_config=client_config(settings),
        )
        print(
            f"using the external broker at {settings.bootstrap} "
            "(DRIFTLINE_KAFKA_BOOTSTRAP is set); nothing to start"
        )
        return 0
    broker = _local(settings, port=args.port, controller_port=args.controller_port)
    current = broker.status()
    if current.running and not args.fresh and current.bootstrap == broker.bootstrap:
        print(f"already running at {current.bootstrap} (pid {current.pid})")
        return 0
    if cached_jars(settings.cache_path) is None:
        print(
            f"downloading the Kafka {KAFKA_VERSION} jars with Maven into "
            f"{jars_dir(settings.cache_path)} (once, about 50 MB)...",
            flush=True,
        )
        ensure_jars(settings.cache_path)
    began = time.monotonic()
    bootstrap = broker.start(fresh=args.fresh, timeout_s=args.timeout)
    started = broker.status()
    wiped = ", fresh: every topic wiped" if args.fresh else ""
    print(
        f"started Kafka {KAFKA_VERSION} at {bootstrap} "
        f"(pid {started.pid}, {time.monotonic() - began:.1f}s{wiped})"
    )
    print(f"  state: {broker.state_dir}")
    print(f"  log:   {broker.log_file}")
    if bootstrap != DEFAULT_BOOTSTRAP:
        print(
            f"  note: other driftline commands connect to {DEFAULT_BOOTSTRAP}; "
            f"give them DRIFTLINE_KAFKA_BOOTSTRAP={bootstrap} to use this broker"
        )
    return 0


def stop_cmd(args: argparse.Namespace) -> int:
    """Stop the local broker; an external broker is left alone."""
    settings = DriftlineSettings.load()
    if not settings.uses_local_broker:
        print(
            f"the broker at {settings.bootstrap} is external (DRIFTLINE_KAFKA_BOOTSTRAP is set); "
            "driftline does not stop it"
        )
        return 0
    broker = _local(settings)
    pid = broker.status().pid
    if broker.stop():
        print(f"stopped the local broker (pid {pid})")
    else:
        print("the local broker is not running")
    return 0


def status_cmd(args: argparse.Namespace) -> int:
    """Report whether the broker runs (local: the process; external: it answers)."""
    settings = DriftlineSettings.load()
    if not settings.uses_local_broker:
        try:
            wait_until_ready(
                settings.bootstrap,
                timeout_s=min(settings.kafka_timeout_s, _STATUS_TIMEOUT_S),
                probe_topic=None,
                client_config=client_config(settings),
            )
            reachable = True
        except BrokerUnavailable:
            reachable = False
        report: dict[str, Any] = {
            "running": reachable,
            "external": True,
            "pid": None,
            "bootstrap": settings.bootstrap,
            "data_dir": None,
            "log_file": None,
        }
        if args.json:
            print(json.dumps(report))
        else:
            state = "reachable" if reachable else "NOT reachable"
            print(f"external broker (DRIFTLINE_KAFKA_BOOTSTRAP): {state} at {settings.bootstrap}")
        return 0 if reachable else 1
    status = _local(settings).status()
    if args.json:
        print(
            json.dumps(
                {
                    "running": status.running,
                    "external": False,
                    "pid": status.pid,
                    "bootstrap": status.bootstrap,
                    "data_dir": str(status.data_dir),
                    "log_file": str(status.log_file),
                }
            )
        )
    else:
        state = f"running (pid {status.pid})" if status.running else "not running"
        print(f"local broker: {state}")
        print(f"  bootstrap: {status.bootstrap}")
        print(f"  state:     {status.data_dir}")
        print(f"  log:       {status.log_file}")
    return 0 if status.running else 1


def logs_cmd(args: argparse.Namespace) -> int:
    """Print the end of the local broker's log, and follow it with ``--follow``."""
    settings = DriftlineSettings.load()
    broker = _local(settings)
    path = broker.log_file
    if not path.is_file():
        where = (
            f"; the configured broker at {settings.bootstrap} is external, so its logs are "
            "wherever it runs"
            if not settings.uses_local_broker
            else "; start it with `driftline broker start`"
        )
        print(f"no local broker log at {path}{where}", file=sys.stderr)
        return 1
    if not args.follow:
        text = broker.tail(max(args.lines, 0))
        if text:
            print(text)
        return 0
    try:
        _follow(path, max(args.lines, 0), sys.stdout)
    except KeyboardInterrupt:
        return 0
    return 0


def fetch_cmd(args: argparse.Namespace) -> int:
    """Download the Kafka jars into the cache (``make setup`` runs this)."""
    settings = DriftlineSettings.load()
    if not settings.uses_local_broker:
        print(
            f"DRIFTLINE_KAFKA_BOOTSTRAP is set ({settings.bootstrap}): the local broker is not "
            "used, so its jars are not fetched"
        )
        return 0
    if cached_jars(settings.cache_path) is None:
        print(
            f"downloading the Kafka {KAFKA_VERSION} jars with Maven (once, about 50 MB)...",
            flush=True,
        )
    path = ensure_jars(settings.cache_path)
    print(f"Kafka {KAFKA_VERSION} jars ready in {path}")
    return 0


# -- helpers ---------------------------------------------------------------------------


def _local(
    settings: DriftlineSettings, *, port: int | None = None, controller_port: int | None = None
) -> LocalBroker:
    return LocalBroker.from_data_dir(
        settings.data_path, settings.cache_path, port=port, controller_port=controller_port
    )


def _follow(path: Path, lines: int, out: IO[str]) -> None:
    """Print the last ``lines`` lines, then new ones as they come, across log rotation."""
    handle = path.open("rb")
    try:
        # Start where the last `lines` lines begin, then stream every byte after that.
        size = handle.seek(0, os.SEEK_END)
        back = min(size, 256 * 1024)
        handle.seek(size - back)
        tail = handle.read(back).splitlines(keepends=True)[-lines:] if lines else []
        handle.seek(size - sum(len(line) for line in tail))
        inode = os.fstat(handle.fileno()).st_ino
        while True:
            chunk = handle.read()
            if chunk:
                out.write(chunk.decode("utf-8", errors="replace"))
                out.flush()
                continue
            try:
                current = path.stat()
            except FileNotFoundError:
                current = None
            if current is not None and (current.st_ino != inode or current.st_size < handle.tell()):
                # Rotated (renamed away) or truncated: continue with the new file.
                handle.close()
                handle = path.open("rb")
                inode = os.fstat(handle.fileno()).st_ino
                continue
            time.sleep(_FOLLOW_POLL_S)
    finally:
        handle.close()


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"{value} is not between 1 and 65535")
    return value


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} must be greater than 0")
    return value
