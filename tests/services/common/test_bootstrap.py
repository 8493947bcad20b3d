"""The one start-up of every service: signals first, exit codes, the error prefix, the
metrics endpoint (in this process; tests/integration/test_service_shutdown.py runs each
service for real)."""

from __future__ import annotations

import logging
import os
import signal
import urllib.error
import urllib.request
from typing import Any

import pytest

from services.common import bootstrap
from services.common.errors import ConfigError, DriftlineError, Fenced
from services.common.metrics import Metrics
from services.common.settings import DriftlineSettings
from services.common.shutdown import GracefulShutdown


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("DRIFTLINE_")]:
        monkeypatch.delenv(name)


def test_the_root_logger_is_given_back(capsys: pytest.CaptureFixture[str]) -> None:
    """Logging is configured once for the service's life; an in-process caller (a test,
    the CLI) gets its own back, not a handler on a stream that is gone."""
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    seen: list[int] = []

    def start(boot: bootstrap.Startup) -> int:
        seen.append(len(root.handlers))
        logging.getLogger("services.test").warning("while it runs")
        return 0

    assert bootstrap.run("learner", start, argv=[], env={}) == 0
    assert (list(root.handlers), root.level) == before and seen == [1]
    assert "WARNING learner services.test: while it runs" in capsys.readouterr().err


def returns(code: int) -> Any:
    def start(boot: bootstrap.Startup) -> int:
        return code

    return start


def raises(exc: BaseException) -> Any:
    def start(boot: bootstrap.Startup) -> int:
        raise exc

    return start


def test_a_bad_shared_setting_exits_2_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    env = {"DRIFTLINE_LOG_LEVEL": "LOUD"}
    assert bootstrap.run("learner", returns(0), argv=[], env=env) == 2
    err = capsys.readouterr().err
    assert err.startswith("driftline learner: error: DRIFTLINE_LOG_LEVEL: ")


@pytest.mark.parametrize(
    ("exc", "code", "message"),
    [
        (ConfigError("DRIFTLINE_X_PORT", "is not a port"), 2, "DRIFTLINE_X_PORT: is not a port"),
        (DriftlineError("the broker went away"), 1, "the broker went away"),
        (Fenced("another x took this one's id"), 3, "another x took this one's id"),
        (RuntimeError("a bug"), 1, "RuntimeError: a bug"),
    ],
)
def test_errors_of_the_start_map_to_exit_codes_with_one_prefix(
    capsys: pytest.CaptureFixture[str], exc: BaseException, code: int, message: str
) -> None:
    assert bootstrap.run("trainer", raises(exc), argv=[], env={}) == code
    assert f"driftline trainer: error: {message}\n" in capsys.readouterr().err


def test_the_start_functions_code_is_the_exit_code() -> None:
    assert bootstrap.run("evaluator", returns(0), argv=[], env={}) == 0
    assert bootstrap.run("evaluator", returns(1), argv=[], env={}) == 1


def test_the_handlers_are_in_place_before_the_settings_load(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A SIGTERM while the settings load (without a handler: the test run would die)
    ends the start-up with 0 before the service starts."""
    real = DriftlineSettings.load.__func__  # type: ignore[attr-defined]

    def load(cls: type[DriftlineSettings], *args: Any, **kwargs: Any) -> DriftlineSettings:
        os.kill(os.getpid(), signal.SIGTERM)
        return real(cls, *args, **kwargs)  # type: ignore[no-any-return]

    monkeypatch.setattr(DriftlineSettings, "load", classmethod(load))
    started: list[str] = []

    def start(boot: bootstrap.Startup) -> int:
        started.append(boot.name)
        return 1

    assert bootstrap.run("registry", start, argv=[], env={}) == 0
    assert started == []


def test_a_signal_during_start_up_ends_it_where_it_is() -> None:
    steps: list[str] = []

    def start(boot: bootstrap.Startup) -> int:
        os.kill(os.getpid(), signal.SIGTERM)
        steps.append("importing the models' libraries")
        return 1

    assert bootstrap.run("serving", start, argv=[], env={}) == 0
    assert steps == []


def test_an_uninterrupted_step_ends_first() -> None:
    steps: list[str] = []

    def start(boot: bootstrap.Startup) -> int:
        with boot.uninterrupted():
            steps.append("migrating")
            os.kill(os.getpid(), signal.SIGTERM)
            steps.append("migrated")  # the migration under way finishes
        steps.append("consuming")
        return 1

    assert bootstrap.run("learner", start, argv=[], env={}) == 0
    assert steps == ["migrating", "migrated"]


def test_once_running_a_signal_only_sets_the_flag() -> None:
    """The service's loop sees the flag and finishes its work in order."""
    steps: list[str] = []

    def start(boot: bootstrap.Startup) -> int:
        boot.running()
        os.kill(os.getpid(), signal.SIGTERM)
        steps.append("checkpointed")
        return 0 if boot.stop.requested else 1

    assert bootstrap.run("evaluator", start, argv=[], env={}) == 0
    assert steps == ["checkpointed"]


def test_a_signal_caught_before_running_ends_the_start_up() -> None:
    def start(boot: bootstrap.Startup) -> int:
        boot.stop.interrupt = None  # as if the signal came in an uninterrupted step
        os.kill(os.getpid(), signal.SIGTERM)
        boot.running()
        return 1

    assert bootstrap.run("trainer", start, argv=[], env={}) == 0


def test_the_services_own_handlers_share_the_bootstraps_request() -> None:
    """serve() and the validator's loop enter a GracefulShutdown of their own: a signal
    caught by the bootstrap's handler just before is not lost to them."""

    def start(boot: bootstrap.Startup) -> int:
        boot.running()
        os.kill(os.getpid(), signal.SIGTERM)
        with GracefulShutdown() as own:
            return 0 if own.requested else 1

    assert bootstrap.run("validator", start, argv=[], env={}) == 0


def test_the_metrics_endpoint_lives_as_long_as_the_service() -> None:
    metrics = Metrics("doc")
    ports: list[int] = []
    bodies: list[bytes] = []

    def start(boot: bootstrap.Startup) -> int:
        assert boot.serve_metrics(metrics, 0) is None  # 0: no endpoint
        port = _free_port()
        assert boot.serve_metrics(metrics, port) == port
        ports.append(port)
        bodies.append(urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read())  # noqa: S310
        return 0

    assert bootstrap.run("learner", start, argv=[], env={}) == 0
    assert b"driftline_service_info" in bodies[0]
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{ports[0]}/metrics", timeout=5)  # noqa: S310


def test_arguments_are_parsed_before_the_start() -> None:
    arguments = bootstrap.parser("registry", "doc")
    arguments.add_argument("--port", type=int)
    got: list[int] = []

    def start(boot: bootstrap.Startup) -> int:
        got.append(boot.args.port)
        return 0

    assert bootstrap.run("registry", start, argv=["--port", "7"], arguments=arguments) == 0
    assert got == [7]
    with pytest.raises(SystemExit) as exited:
        bootstrap.run("registry", start, argv=["--port", "x"], arguments=arguments)
    assert exited.value.code == 2


def _free_port() -> int:
    from services.localbroker.ports import free_ports

    return free_ports(1)[0]
