"""``driftline run validator`` and ``python -m services.validator``: start the validator.

Settings come from the environment (``DRIFTLINE_*`` and ``DRIFTLINE_VALIDATOR_*``);
the only argument is ``--help``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from services.common.errors import DriftlineError
from services.common.kafka_client import leave_group
from services.common.logs import configure_logging
from services.common.settings import DriftlineSettings
from services.validator.settings import ValidatorSettings

log = logging.getLogger("services.validator")


def main(argv: Sequence[str] | None = None) -> int:
    """Build the settings, configure logging and run the validator; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="driftline run validator",
        description=(
            "Validate examples.raw against the stream specs: valid examples go to "
            "examples.valid, rejected ones to examples.dead with a reason code. "
            "Configured by DRIFTLINE_* and DRIFTLINE_VALIDATOR_* variables; "
            "SIGTERM stops it gracefully."
        ),
    )
    parser.parse_args(list(argv) if argv is not None else sys.argv[1:])
    try:
        settings = DriftlineSettings.load()
        vsettings = ValidatorSettings.load()
        member = vsettings.member(settings)  # validated (and held) before anything starts
    except DriftlineError as exc:
        print(f"validator: error: {exc}", file=sys.stderr)  # noqa: T201 - before logging
        return 2
    configure_logging("validator", fmt=settings.log_format, level=settings.log_level)
    from services.validator.loop import run_loop

    group = vsettings.group(settings.topic_prefix)
    log.info("group %s as static member %s", group, member)
    try:
        code = run_loop(settings, vsettings)
    except DriftlineError as exc:
        log.error("%s", exc)
        return 2
    if code == 0 and vsettings.leave_on_stop:
        # a static member keeps its partitions until the session timeout: hand them
        # over now, this replica has stopped (its offsets are committed)
        leave_group(settings, group, member, reason="SIGTERM")
    return code


if __name__ == "__main__":
    sys.exit(main())
