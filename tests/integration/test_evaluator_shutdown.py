"""SIGTERM while the evaluator waits at start-up for its models to load ends it with exit 0
long before ``models_timeout_s``."""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from services.common.settings import DriftlineSettings
from tests.integration.evaluator_support import (
    evaluator_env,
    loans_stream,
    register_tree,
    set_alias,
    start_evaluator,
)
from tests.integration.polling import wait_for

BOUND_S = 30.0  # the design's 10 s from SIGTERM to exit, with the allowance for CI's load


def drip(server: socket.socket, done: threading.Event) -> None:
    """Answer every connection with a large body, one byte every second."""
    conns: list[socket.socket] = []
    server.settimeout(0.5)
    while not done.is_set():
        try:
            conn, _ = server.accept()
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
            conns.append(conn)
        except TimeoutError:
            pass
        except OSError:
            break
        for conn in list(conns):
            try:
                conn.sendall(b"x")
            except OSError:
                conns.remove(conn)
        done.wait(0.5)
    for conn in conns:
        conn.close()


def test_sigterm_while_models_load_at_start_exits_0(
    settings_factory: Callable[..., DriftlineSettings], tmp_path: Path
) -> None:
    settings, cfg, registry = loans_stream(settings_factory)
    champion = register_tree(registry, cfg, 0)
    set_alias(registry, "loans", "champion", champion)
    found = registry.get_version(model="loans", version=champion)
    registry.close()
    # The champion's artifact is not where its event says (wherever the registry stores
    # it: this test's data dir, or a registry service's), so the evaluator fetches it
    # from the registry's API, which answers slower than any timeout: the load never ends.
    assert found is not None
    stored = Path(found.artifact.uri.removeprefix("file://"))
    stored.rename(stored.with_name(f"{stored.name}-moved"))
    server = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()
    threading.Thread(target=drip, args=(server, done), daemon=True).start()
    url = f"http://127.0.0.1:{server.getsockname()[1]}"
    env = evaluator_env(
        settings,
        f"ev-{uuid.uuid4().hex[:8]}",
        DRIFTLINE_DATA_DIR=str(tmp_path / "evaluator"),
        DRIFTLINE_REGISTRY_URL=url,
        DRIFTLINE_REGISTRY_TIMEOUT_S="600",
        DRIFTLINE_EVALUATOR_MODELS_TIMEOUT_S="600",
        DRIFTLINE_LOG_LEVEL="INFO",
    )
    log = tmp_path / "evaluator.log"
    proc = start_evaluator(env, log)
    try:
        wait_for(
            lambda: log.exists() and "models topic read to its end" in log.read_text(),
            120,
            "the evaluator loading its models",
            proc,
            log,
        )
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=BOUND_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {BOUND_S:.0f}s after SIGTERM\n{log.read_text()[-3000:]}")
        assert code == 0, log.read_text()[-3000:]
        text = log.read_text()
        assert "models not all loaded" not in text  # the wait was ended, not timed out
        assert "Traceback" not in text
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        done.set()
        server.close()
