"""The log throttle: per-template budgets, the libraries' shared budget, the summary line."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator

import pytest

from services.common.log_throttle import LogThrottle


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO, logging.Handler]]:
    """A logger tree of its own whose lines land in a string."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    root = logging.getLogger("throttle-test")
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    root.propagate = False
    yield root, out, handler
    root.removeHandler(handler)


def lines(out: io.StringIO) -> list[str]:
    return out.getvalue().splitlines()


def test_a_flood_is_cut_to_its_burst_and_summed_up_in_one_line(
    captured: tuple[logging.Logger, io.StringIO, logging.Handler],
) -> None:
    root, out, handler = captured
    throttle = LogThrottle(burst=3, per_second=0.0, summary_s=0, handler=handler)
    handler.addFilter(throttle)
    for i in range(1000):
        root.getChild("conn").error("connect to node %d failed", i)
    root.getChild("conn").error("another template")
    root.getChild("app").info("our own info line %d", 1)
    assert len(lines(out)) == 5
    throttle.flush()
    summary = lines(out)[-1]
    assert summary.startswith("services.common.log_throttle 997 similar lines suppressed in the")
    assert "'connect to node %d failed' x997" in summary
    throttle.flush()  # nothing more was dropped: no second summary
    assert len(lines(out)) == 6


def test_the_client_libraries_share_one_budget(
    captured: tuple[logging.Logger, io.StringIO, logging.Handler],
) -> None:
    _root, out, handler = captured
    throttle = LogThrottle(
        burst=5, per_second=0.0, library_burst=4, library_per_second=0.0, summary_s=0
    )
    handler.addFilter(throttle)
    libraries = [logging.getLogger(name) for name in ("kafka.conn", "aiokafka", "mode.timers")]
    for logger in libraries:
        logger.addHandler(handler)
        logger.propagate = False
    try:
        for i in range(10):
            for logger in libraries:
                logger.error("template %s of %s", i, logger.name)  # 3 keys, 5 each allowed
    finally:
        for logger in libraries:
            logger.removeHandler(handler)
            logger.propagate = True
    assert len(lines(out)) == 4 and throttle.suppressed() == 26


def test_the_summary_comes_by_itself_when_the_noise_stops(
    captured: tuple[logging.Logger, io.StringIO, logging.Handler],
) -> None:
    root, out, handler = captured
    throttle = LogThrottle(burst=1, per_second=0.0, summary_s=0.2, handler=handler)
    handler.addFilter(throttle)
    for _ in range(5):
        root.warning("retrying")
    root.critical("never throttled")
    root.critical("never throttled")
    deadline = time.monotonic() + 5
    while "suppressed" not in out.getvalue() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lines(out)[:3] == ["throttle-test retrying"] + ["throttle-test never throttled"] * 2
    assert "4 similar lines suppressed in the last 0." in lines(out)[-1]
    throttle.close()
