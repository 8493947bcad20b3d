"""Static group membership: one stable ``group.instance.id`` per replica.

Why: a consumer killed with -9 stays in its group until the coordinator's session
timeout expires, and a dynamic member that restarts must wait for that rebalance
(about the session timeout: 10-30 s). A *static* member that restarts with the same
instance id takes its old place (and partitions) at once, so a restarted learner or
validator processes again within a few seconds.

The id: ``DRIFTLINE_<SERVICE>_INSTANCE_ID`` when set, else ``<service>-<host>-<slot>``,
where ``slot`` is the lowest free number among the replicas of the same group (and
bootstrap) on this host. Slots are held with ``flock`` on a file under the temporary
directory; the kernel releases the lock when the process dies, even by kill -9, so a
replica restarted with the same command gets the same slot (and id), while a second
replica started beside it gets the next one. Containers have their own host names.

Two live replicas with the same id would fence each other (the broker hands the id to
the newer one and answers the older one ``FENCED_INSTANCE_ID``). On one host this is
refused at start-up: a configured id held by another live process is a
:class:`~services.common.errors.ConfigError` naming the setting. Across hosts the
broker's fence is what detects it.

Static members do not leave their group when they close; a replica that stops for good
(SIGTERM) removes itself with :func:`services.common.kafka_client.leave_group`, so its
partitions move to the others at once instead of after the session timeout.

>>> valid_instance_id("learner-host-0")
'learner-host-0'
>>> valid_instance_id("a b")
Traceback (most recent call last):
...
ValueError: 'a b' is not a group instance id: 1-200 of letters, digits, '.', '_' and '-'
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import logging
import os
import re
import socket
import tempfile
from pathlib import Path
from typing import IO, Literal

from services.common.errors import ConfigError

log = logging.getLogger(__name__)

INSTANCE_ID_PATTERN = r"^[A-Za-z0-9._-]{1,200}$"
_INSTANCE_ID = re.compile(INSTANCE_ID_PATTERN)
_MAX_SLOTS = 1000
# (bootstrap, group) -> (instance id, the open lock file): held for the process' life.
_HELD: dict[tuple[str, str], tuple[str, IO[str] | None]] = {}


def valid_instance_id(value: str) -> str:
    """``value`` if Kafka accepts it as a ``group.instance.id`` (else ValueError)."""
    if value in (".", "..") or not _INSTANCE_ID.match(value):
        raise ValueError(
            f"{value!r} is not a group instance id: 1-200 of letters, digits, '.', '_' and '-'"
        )
    return value


def host_name() -> str:
    """This host's name, reduced to the characters an instance id may hold."""
    return re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:120] or "host"


def lock_dir(bootstrap: str, group: str) -> Path:
    """Where the slots of one group (on one bootstrap) are locked on this host."""
    digest = hashlib.sha256(f"{bootstrap}\0{group}".encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / "driftline-members" / digest


def instance_id(
    *, service: str, group: str, bootstrap: str, configured: str | None, setting: str
) -> str:
    """This process' static member id in ``group`` (the same on every call).

    ``configured`` is the setting's value (None: derive one); ``setting`` names it in
    errors. Raises :class:`ConfigError` when the configured id is malformed or is held
    by another live process on this host.
    """
    held = _HELD.get((bootstrap, group))
    if held is not None:
        return held[0]
    if not _HELD:
        atexit.register(release_all)  # close the lock files cleanly (the kernel would too)
    if configured is not None:
        try:
            valid_instance_id(configured)
        except ValueError as exc:
            raise ConfigError(setting, str(exc)) from exc
        handle = _try_lock(lock_dir(bootstrap, group) / f"id-{configured}.lock")
        if handle is False:
            raise ConfigError(
                setting,
                f"{configured!r} is in use by another live process in group {group!r} on "
                "this host; two members with one id fence each other: give each replica "
                "its own id (or leave it unset)",
            )
        _HELD[(bootstrap, group)] = (configured, handle)
        return configured
    base = f"{service}-{host_name()}"
    for slot in range(_MAX_SLOTS):
        handle = _try_lock(lock_dir(bootstrap, group) / f"slot-{slot}.lock")
        if handle is False:
            continue
        chosen = f"{base}-{slot}"
        _HELD[(bootstrap, group)] = (chosen, handle)
        return chosen
    raise ConfigError(setting, f"more than {_MAX_SLOTS} replicas of {group!r} on this host")


def release_all() -> None:
    """Forget every id this process holds and unlock its slots (tests; normal exit)."""
    for _, handle in _HELD.values():
        if handle is not None:
            with contextlib.suppress(OSError):
                handle.close()
    _HELD.clear()


def _try_lock(path: Path) -> IO[str] | Literal[False] | None:
    """The locked file, False when another process holds it, None when no lock can be
    taken here (an unwritable temporary directory: the id is then used unchecked)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+")  # noqa: SIM115 - held open for the process' life
    except OSError as exc:
        log.warning("cannot lock %s (%s): instance ids are not checked on this host", path, exc)
        return None
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return False
    except OSError as exc:
        handle.close()
        log.warning("cannot lock %s (%s): instance ids are not checked on this host", path, exc)
        return None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle
