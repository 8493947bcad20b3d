"""The local development broker as a managed process: start, stop, status and logs.

One :class:`LocalBroker` per data directory. The broker runs detached (in its own
session), so it outlives the command that started it. Its PID file is trusted only
when ``/proc/<pid>/cmdline`` shows ``java ... kafka.Kafka <our server.properties>``, so
a PID reused by another process is never reported as the broker nor signalled. Start
and stop hold a file lock, so two commands racing on one data directory never launch
two brokers.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.common.errors import BrokerUnavailable, LocalBrokerError
from services.common.kafka_client import wait_until_ready
from services.localbroker.config import (
    KAFKA_VERSION,
    LISTEN_HOST,
    BrokerLayout,
    random_cluster_id,
    render_log4j_properties,
    render_server_properties,
)
from services.localbroker.jars import ensure_jars, find_java

DEFAULT_PORT = 9092
DEFAULT_CONTROLLER_PORT = 9093
DEFAULT_HEAP = "512m"
_HEAP = re.compile(r"^[1-9][0-9]*[kKmMgG]?$")
_POLL_S = 0.05
_KILL_GRACE_S = 10.0
_FORMAT_TIMEOUT_S = 120.0
_REPORT_LINES = 30


@dataclass(frozen=True)
class BrokerStatus:
    """A snapshot of the local broker, as :meth:`LocalBroker.status` sees it.

    ``data_dir`` is where the broker keeps its state (``<data dir>/kafka``); ``pid`` is
    ``None`` unless ``running``.
    """

    running: bool
    pid: int | None
    bootstrap: str
    data_dir: Path
    log_file: Path


class LocalBroker:
    """A single-node KRaft Kafka broker on 127.0.0.1, for development, tests and the demo.

    Parameters
    ----------
    data_dir
        The driftline data directory; the broker's state goes to ``data_dir / "kafka"``.
    cache_dir
        Download cache; the Kafka jars are fetched once into ``cache_dir / "kafka-3.9.1"``.
    port, controller_port
        The client listener and the KRaft controller listener, both on 127.0.0.1.
    heap
        The JVM's maximum heap (``-Xmx``).

    Examples
    --------
    Starting is idempotent, and a fresh start wipes every topic first::

        broker = LocalBroker(Path(".driftline"), Path.home() / ".cache" / "driftline")
        bootstrap = broker.start()          # "127.0.0.1:9092"; a no-op when running
        broker.status().running             # True
        broker.stop()                       # True: it was running

    Nothing runs until :meth:`start`:

    >>> LocalBroker(Path("/srv/dl"), Path("/srv/cache"), port=19092).bootstrap
    '127.0.0.1:19092'
    """

    def __init__(
        self,
        data_dir: Path,
        cache_dir: Path,
        port: int = DEFAULT_PORT,
        controller_port: int = DEFAULT_CONTROLLER_PORT,
        heap: str = DEFAULT_HEAP,
    ) -> None:
        for name, value in (("port", port), ("controller_port", controller_port)):
            if not 0 < value < 65536:
                raise ValueError(f"{name} must be between 1 and 65535, not {value}")
        if port == controller_port:
            raise ValueError(f"port and controller_port must differ (both are {port})")
        if not _HEAP.match(heap):
            raise ValueError(f"heap must look like 512m or 1g, not {heap!r}")
        self.data_dir = data_dir.expanduser().resolve()
        self.cache_dir = cache_dir.expanduser().resolve()
        self.port = port
        self.controller_port = controller_port
        self.heap = heap
        self.layout = BrokerLayout.under(self.data_dir)
        self._proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def from_data_dir(
        cls,
        data_dir: Path,
        cache_dir: Path,
        *,
        port: int | None = None,
        controller_port: int | None = None,
        heap: str | None = None,
    ) -> LocalBroker:
        """The broker of ``data_dir`` with the ports and heap it was last started with.

        Explicit arguments win. A new ``port`` without a ``controller_port`` gets
        ``port + 1``; with nothing stored and nothing given, the defaults apply.
        """
        stored = _read_settings(BrokerLayout.under(data_dir.expanduser().resolve()))
        stored_port = stored.get("port")
        stored_controller = stored.get("controller_port")
        if port is None:
            port = stored_port if isinstance(stored_port, int) else DEFAULT_PORT
        if controller_port is None:
            if port == stored_port and isinstance(stored_controller, int):
                controller_port = stored_controller
            elif port == DEFAULT_PORT:
                controller_port = DEFAULT_CONTROLLER_PORT
            else:
                controller_port = port + 1 if port < 65535 else port - 1
        if heap is None:
            stored_heap = stored.get("heap")
            heap = stored_heap if isinstance(stored_heap, str) else DEFAULT_HEAP
        return cls(data_dir, cache_dir, port=port, controller_port=controller_port, heap=heap)

    def __repr__(self) -> str:
        return f"LocalBroker({str(self.data_dir)!r}, port={self.port})"

    # -- what it is -------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        """The bootstrap address clients use: ``127.0.0.1:<port>``."""
        return f"{LISTEN_HOST}:{self.port}"

    @property
    def state_dir(self) -> Path:
        """Where the broker keeps everything: ``data_dir / "kafka"``."""
        return self.layout.root

    @property
    def log_file(self) -> Path:
        """The broker's log file."""
        return self.layout.log_file

    def status(self) -> BrokerStatus:
        """Whether our broker process is running (a process check; no client connects)."""
        pid = self._running_pid()
        port = self.port
        if pid is not None:
            stored = _read_settings(self.layout).get("port")
            port = stored if isinstance(stored, int) else port
        return BrokerStatus(
            running=pid is not None,
            pid=pid,
            bootstrap=f"{LISTEN_HOST}:{port}",
            data_dir=self.layout.root,
            log_file=self.layout.log_file,
        )

    def tail(self, lines: int = 50) -> str:
        """The last ``lines`` lines of the broker's log ("" when there is none yet)."""
        return _tail(self.layout.log_file, lines)

    # -- start and stop ---------------------------------------------------------------

    def start(self, fresh: bool = False, timeout_s: float = 90) -> str:
        """Start the broker unless it already runs; return its bootstrap address.

        ``fresh`` stops a running broker and wipes its state (every topic) first.
        Waits until a client can create a topic, for at most ``timeout_s`` seconds.
        Raises :class:`~services.common.errors.LocalBrokerError` when Java or the jars
        are missing, a port is taken, or the broker dies or stays silent (with the
        tail of its log); a broker that did not come up is not left running.
        """
        with self._locked():
            pid = self._running_pid()
            if pid is not None and not fresh:
                running = self.status().bootstrap
                if running != self.bootstrap:
                    raise LocalBrokerError(
                        f"the local broker in {self.state_dir} already runs at {running} "
                        f"(pid {pid}); stop it first to start it at {self.bootstrap}"
                    )
                return self.bootstrap
            if pid is not None:
                self._terminate(pid, timeout_s=30.0)
            # Everything that can fail for want of ports, Java or jars comes before
            # the one destructive step (--fresh), so a failed start loses no data.
            self._check_ports_free()
            java = find_java()
            jars = ensure_jars(self.cache_dir)
            if fresh:
                self._wipe()
            self._prepare(java, jars)
            log_offset = _size(self.layout.log_file)
            proc = self._launch(java, jars)
            self._wait_ready(proc, timeout_s, log_offset)
            return self.bootstrap

    def stop(self, timeout_s: float = 30) -> bool:
        """Stop our broker: SIGTERM, then SIGKILL after ``timeout_s``.

        Returns whether a broker was running. Only a process verified to be this data
        directory's broker is signalled; a stale PID file is just removed.
        """
        if not self.layout.root.is_dir():
            return False
        with self._locked():
            pid = self._running_pid()
            if pid is None:
                self.layout.pid_file.unlink(missing_ok=True)
                return False
            self._terminate(pid, timeout_s=timeout_s)
            return True

    # -- internals --------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.layout.run_dir.mkdir(parents=True, exist_ok=True)
            handle = self.layout.lock_file.open("a")
        except OSError as exc:
            raise LocalBrokerError(f"cannot use {self.state_dir}: {exc}") from exc
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _running_pid(self) -> int | None:
        self._reap_own()
        try:
            pid = int(self.layout.pid_file.read_text(encoding="ascii").strip())
        except (OSError, ValueError):
            return None
        if pid <= 0 or not self._is_ours(pid):
            return None
        return pid

    def _is_ours(self, pid: int) -> bool:
        args = _process_args(pid)
        if not args or not Path(args[0]).name.startswith("java") or "kafka.Kafka" not in args:
            return False
        props = str(self.layout.server_properties)
        return props in args or (not _has_proc() and props in " ".join(args))

    def _reap_own(self) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            self._proc = None

    def _check_ports_free(self) -> None:
        for what, port in (("client", self.port), ("controller", self.controller_port)):
            if _port_in_use(port):
                raise LocalBrokerError(
                    f"{LISTEN_HOST}:{port} (the local broker's {what} port) is already in use "
                    "by another process. Choose free ports (`driftline broker start --port P "
                    f"--controller-port C`), stop what listens there (`ss -ltnp 'sport = :{port}'` "
                    "shows it), or, if it is a Kafka broker you run, set "
                    "DRIFTLINE_KAFKA_BOOTSTRAP to use it"
                )

    def _wipe(self) -> None:
        if not self.layout.root.is_dir():
            return
        for child in self.layout.root.iterdir():
            if child == self.layout.run_dir:
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()

    def _prepare(self, java: str, jars: Path) -> None:
        layout = self.layout
        try:
            for directory in (layout.config_dir, layout.logs_dir, layout.run_dir):
                directory.mkdir(parents=True, exist_ok=True)
            _write_atomic(
                layout.server_properties,
                render_server_properties(
                    layout.log_dir, port=self.port, controller_port=self.controller_port
                ),
            )
            _write_atomic(layout.log4j_properties, render_log4j_properties(layout.log_file))
            settings = {
                "port": self.port,
                "controller_port": self.controller_port,
                "heap": self.heap,
                "kafka_version": KAFKA_VERSION,
            }
            _write_atomic(layout.settings_file, json.dumps(settings, indent=2) + "\n")
        except OSError as exc:
            raise LocalBrokerError(
                f"cannot write the broker's files in {layout.root}: {exc}"
            ) from exc
        if not layout.meta_properties.is_file():
            self._format(java, jars)

    def _format(self, java: str, jars: Path) -> None:
        """Format the KRaft storage in a staging directory, then rename it into place."""
        log_dir = self.layout.log_dir
        if log_dir.is_dir() and any(log_dir.iterdir()):
            raise LocalBrokerError(
                f"{log_dir} holds files but no meta.properties, so it is not a Kafka log "
                "directory this broker formatted; start with --fresh to wipe it"
            )
        staging = Path(tempfile.mkdtemp(prefix="data.formatting-", dir=self.layout.root))
        props = self.layout.config_dir / "format.properties"
        try:
            props.write_text(
                render_server_properties(
                    staging, port=self.port, controller_port=self.controller_port
                ),
                encoding="ascii",
            )
            cmd = self._java_command(
                java, jars, "kafka.tools.StorageTool",
                "format", "-t", random_cluster_id(), "-c", str(props),
            )  # fmt: skip
            try:
                result = subprocess.run(  # noqa: S603  # fixed arguments, no shell
                    cmd,
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    text=True,
                    errors="replace",
                    timeout=_FORMAT_TIMEOUT_S,
                    check=False,
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise LocalBrokerError(f"cannot format the broker's storage: {exc}") from exc
            if result.returncode != 0:
                output = (result.stdout + result.stderr).strip().splitlines()
                raise LocalBrokerError(
                    f"formatting the broker's storage in {log_dir} failed "
                    f"(exit code {result.returncode}):\n" + "\n".join(output[-_REPORT_LINES:])
                )
            if log_dir.is_dir():
                log_dir.rmdir()  # empty, checked above
            staging.rename(log_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            props.unlink(missing_ok=True)

    def _java_command(self, java: str, jars: Path, main: str, *args: str) -> list[str]:
        return [
            java,
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:+ExplicitGCInvokesConcurrent",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dlog4j.configuration={self.layout.log4j_properties.as_uri()}",
            f"-Dkafka.logs.dir={self.layout.logs_dir}",
            "-cp",
            str(jars / "*"),
            main,
            *args,
        ]

    def _launch(self, java: str, jars: Path) -> subprocess.Popen[bytes]:
        cmd = self._java_command(java, jars, "kafka.Kafka", str(self.layout.server_properties))
        try:
            with self.layout.console_file.open("wb") as console:
                proc = subprocess.Popen(  # noqa: S603  # fixed arguments, no shell
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=console,
                    stderr=subprocess.STDOUT,
                    cwd=self.layout.root,
                    start_new_session=True,
                )
        except OSError as exc:
            raise LocalBrokerError(f"cannot launch the broker with {java}: {exc}") from exc
        self._proc = proc
        try:
            _write_atomic(self.layout.pid_file, f"{proc.pid}\n")
        except OSError as exc:
            self._terminate(proc.pid, timeout_s=_KILL_GRACE_S)
            raise LocalBrokerError(f"cannot write {self.layout.pid_file}: {exc}") from exc
        return proc

    def _wait_ready(self, proc: subprocess.Popen[bytes], timeout_s: float, offset: int) -> None:
        deadline = time.monotonic() + timeout_s
        try:
            self._wait_listening(proc, deadline)
            wait_until_ready(
                self.bootstrap,
                timeout_s=max(deadline - time.monotonic(), 1.0),
                is_alive=lambda: proc.poll() is None,
            )
        except BrokerUnavailable as exc:
            code = proc.poll()
            if code is None:
                self._terminate(proc.pid, timeout_s=_KILL_GRACE_S)
                what = (
                    f"did not answer at {self.bootstrap} within {timeout_s:g}s, so it was stopped"
                )
            else:
                self.layout.pid_file.unlink(missing_ok=True)
                what = f"exited with code {code} while starting"
            raise LocalBrokerError(
                f"the local Kafka broker {what}.\n{self._failure_report(offset)}"
            ) from exc
        except BaseException:
            # Interrupted (Ctrl-C): do not leave a half-started broker behind.
            self._terminate(proc.pid, timeout_s=_KILL_GRACE_S)
            raise

    def _wait_listening(self, proc: subprocess.Popen[bytes], deadline: float) -> None:
        """Poll until the client port accepts TCP connections.

        Only then do Kafka clients take over: kafka-python leaks a socket on every
        refused connection, which plain sockets closed here do not.
        """
        while True:
            if proc.poll() is not None:
                raise BrokerUnavailable(f"the broker process for {self.bootstrap} exited")
            try:
                with socket.create_connection((LISTEN_HOST, self.port), timeout=1.0):
                    return
            except OSError:
                pass
            if time.monotonic() >= deadline:
                raise BrokerUnavailable(f"nothing listens at {self.bootstrap}")
            time.sleep(0.1)

    def _failure_report(self, log_offset: int) -> str:
        parts = []
        console = _tail(self.layout.console_file, _REPORT_LINES).strip()
        if console:
            parts.append(f"JVM output ({self.layout.console_file}):\n{console}")
        log = _tail(self.layout.log_file, _REPORT_LINES, start=log_offset).strip()
        parts.append(f"last lines of {self.layout.log_file}:\n{log or '(empty)'}")
        return "\n".join(parts)

    def _terminate(self, pid: int, *, timeout_s: float) -> None:
        """SIGTERM, wait, SIGKILL; the process is gone (and reaped if ours) on return."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not self._wait_exit(pid, timeout_s):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            if not self._wait_exit(pid, _KILL_GRACE_S):
                raise LocalBrokerError(f"the local broker (pid {pid}) survived SIGKILL")
        self.layout.pid_file.unlink(missing_ok=True)
        self._reap_own()

    def _wait_exit(self, pid: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not self._exited(pid):
            if time.monotonic() >= deadline:
                return False
            time.sleep(_POLL_S)
        return True

    def _exited(self, pid: int) -> bool:
        if self._proc is not None and self._proc.pid == pid:
            return self._proc.poll() is not None
        with contextlib.suppress(ChildProcessError):
            # Reap it if it is our child (started by another instance in this process).
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done == pid:
                return True
        state = _process_state(pid)
        return state is None or state in ("Z", "X")


# -- helpers ---------------------------------------------------------------------------


def _read_settings(layout: BrokerLayout) -> dict[str, Any]:
    try:
        data = json.loads(layout.settings_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _tail(path: Path, lines: int, *, start: int = 0) -> str:
    """The last ``lines`` lines of ``path`` after byte ``start``, reading from the end."""
    if lines <= 0:
        return ""
    try:
        handle = path.open("rb")
    except OSError:
        return ""
    with handle:
        pos = handle.seek(0, os.SEEK_END)
        if start > pos:  # rotated or truncated since: take what there is
            start = 0
        data = b""
        while pos > start and data.count(b"\n") <= lines:
            step = min(64 * 1024, pos - start)
            pos -= step
            handle.seek(pos)
            data = handle.read(step) + data
    return "\n".join(data.decode("utf-8", errors="replace").splitlines()[-lines:])


def _port_in_use(port: int) -> bool:
    """Whether binding ``127.0.0.1:port`` fails as Kafka's would (it sets SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LISTEN_HOST, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise LocalBrokerError(f"cannot listen on {LISTEN_HOST}:{port}: {exc}") from exc
    return False


@functools.cache
def _has_proc() -> bool:
    """Whether this system has Linux's /proc (else ``ps`` answers)."""
    return Path("/proc/self/cmdline").exists()


def _process_args(pid: int) -> list[str]:
    """The command line of ``pid`` ([] when it is gone or a zombie)."""
    if _has_proc():
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return []
        return [os.fsdecode(arg) for arg in raw.split(b"\0") if arg]
    try:  # no /proc (macOS): ask ps; arguments with spaces come back split
        out = subprocess.run(  # noqa: S603  # fixed arguments, no shell
            ["ps", "-ww", "-o", "args=", "-p", str(pid)],  # noqa: S607  # ps is on every PATH
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    return out.stdout.split() if out.returncode == 0 else []


def _process_state(pid: int) -> str | None:
    """The process state letter (``R``, ``S``, ``Z``...), ``None`` when there is no process."""
    if _has_proc():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
        except OSError:
            return None
        fields = stat.rpartition(")")[2].split()
        return fields[0] if fields else None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return "?"
    return "?"
