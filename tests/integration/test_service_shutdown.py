"""SIGTERM at any moment of a service's start-up, and right after it, ends the process with
exit 0 within the design's bound (10 s; serving 1 s): every ``__main__`` starts through
:mod:`services.common.bootstrap`, which installs the handlers before anything else.

Two moments per service (and the third for the trainer, whose running stop no other test
checks), each on a real process against the real broker:

- ``handlers``: as soon as the process catches SIGTERM (``SigCgt`` in ``/proc``), while
  the interpreter is still importing and the settings load;
- ``starting``: at the bootstrap's first log line, while the service reaches the registry
  (a registry service over HTTP, in the suite's default mode; the registry itself runs its
  Alembic migrations on a fresh database), connects to Kafka and reads its configs;
- ``running``: once the service says it runs (its endpoint or its consumer is up).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from services.common.settings import DriftlineSettings
from services.localbroker.ports import free_ports
from tests.integration.polling import wait_for
from tests.integration.processes import service_env, start_service
from tests.keys import private_key_for, public_key_for

KEY = private_key_for("shutdown-test")
GRACE_S = {"serving": 1.0}  # the design's bound on SIGTERM -> exit; 10 s for the others
DEFAULT_GRACE_S = 10.0
# CI's 2 cores are shared: a process there gets a fraction of one, and its teardown
# (River, scikit-learn, numpy) slows with it. The bound is checked with this allowance.
LOAD_ALLOWANCE = 3.0
START_S = 180.0  # a loaded machine imports River and scikit-learn slowly

# what each service logs once it runs
RUNNING = {
    "validator": "validating ",
    "trainer": "training on ",
    "learner": "metrics on http://",
    "evaluator": "metrics on http://",
    "registry": "registry API on http://",
    "serving": "(Kafka path ",
}


def settings_for(
    settings_factory: Callable[..., DriftlineSettings], name: str, when: str
) -> DriftlineSettings:
    """The test's settings: at ``starting``, a service other than the registry is handed a
    registry service of its own (over HTTP, unless the run asks for the in-process store),
    as the demo and compose hand one out; before that moment nothing reaches a registry."""
    if when == "starting" and name != "registry":
        return settings_factory(signing_key=KEY, signing_key_id="k1")
    return settings_factory()


def env_of(name: str, settings: DriftlineSettings) -> dict[str, str]:
    """The service's environment on this test's broker, prefix, data dir and keys."""
    port = str(free_ports(1)[0])
    own = {
        "validator": {"DRIFTLINE_VALIDATOR_METRICS_PORT": "0"},
        "trainer": {"DRIFTLINE_TRAINER_METRICS_PORT": "0", "DRIFTLINE_TRAINER_WORKERS": "1"},
        "learner": {"DRIFTLINE_LEARNER_METRICS_PORT": port},
        "evaluator": {"DRIFTLINE_EVALUATOR_METRICS_PORT": port},
        "registry": {"DRIFTLINE_REGISTRY_PORT": "0"},
        "serving": {"DRIFTLINE_SERVING_PORT": "0"},
    }[name]
    return service_env(
        settings,
        KEY,
        DRIFTLINE_VERIFY_KEYS=f"k1:{public_key_for('shutdown-test')}",
        DRIFTLINE_KAFKA_CLIENT=settings.kafka_client,
        DRIFTLINE_LOG_LEVEL="INFO",
        **own,
    )


def catches_sigterm(pid: int) -> bool:
    """True once the process has a handler for SIGTERM (Python installs none itself)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    caught = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught.split()[1], 16) & (1 << (signal.SIGTERM - 1)))


def logged(log: Path, text: str) -> Callable[[], bool]:
    return lambda: log.exists() and text in log.read_text()


def moment(name: str, when: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Wait until ``proc`` reaches the start-up moment ``when``."""
    if when == "handlers":
        wait_for(lambda: catches_sigterm(proc.pid), START_S, "the SIGTERM handler", proc, log)
    elif when == "starting":
        wait_for(logged(log, f"starting {name} (pid"), START_S, "the start-up", proc, log)
    else:
        wait_for(logged(log, RUNNING[name]), START_S, f"{name} running", proc, log)


SERVICES = ("validator", "learner", "trainer", "registry", "serving", "evaluator")
# SIGTERM once running is asserted (exit 0) by every other test that stops a running
# service (test_validator_crash, test_learner*, test_one_stream, test_serving,
# test_evaluator*, test_registry_*); only the trainer's is not, so it runs here.
CASES = [(name, when) for name in SERVICES for when in ("handlers", "starting")] + [
    ("trainer", "running")
]


@pytest.mark.parametrize(("name", "when"), CASES)
def test_sigterm_during_and_right_after_start_up_exits_0_within_the_bound(
    settings_factory: Callable[..., DriftlineSettings], tmp_path: Path, name: str, when: str
) -> None:
    settings = settings_for(settings_factory, name, when)
    log = tmp_path / f"{name}.log"
    proc = start_service(name, env_of(name, settings), log)
    try:
        moment(name, when, proc, log)
        proc.send_signal(signal.SIGTERM)
        grace = GRACE_S.get(name, DEFAULT_GRACE_S) * LOAD_ALLOWANCE
        sent = time.monotonic()
        try:
            code = proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.wait(timeout=60)
            pytest.fail(
                f"{name} took {time.monotonic() - sent:.1f}s to stop after SIGTERM at "
                f"{when!r} (bound with the load allowance {grace:.0f}s)\n{log.read_text()[-3000:]}"
            )
        assert code == 0, log.read_text()[-3000:]
        assert "Traceback" not in log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("when", ["handlers", "starting"])
def test_driftline_run_stops_the_same_way(
    settings_factory: Callable[..., DriftlineSettings], tmp_path: Path, when: str
) -> None:
    """``driftline run NAME`` starts the service through the same bootstrap."""
    settings = settings_for(settings_factory, "learner", when)
    log = tmp_path / "learner.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.cli.main", "run", "learner"],
            env=env_of("learner", settings),
            stdout=subprocess.DEVNULL,
            stderr=out,
        )
    try:
        moment("learner", when, proc, log)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=DEFAULT_GRACE_S * LOAD_ALLOWANCE) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
