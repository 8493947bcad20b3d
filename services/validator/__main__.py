"""``driftline run validator`` and ``python -m services.validator``: start the validator.

Settings come from the environment (``DRIFTLINE_*`` and ``DRIFTLINE_VALIDATOR_*``);
the only argument is ``--help``. Started by :mod:`services.common.bootstrap` (signals
first, settings, logging, exit codes); the Kafka clients (and faust, when it is the
engine) are imported once the handlers are in place.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from services.common import bootstrap

log = logging.getLogger("services.validator")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the validator until SIGTERM/SIGINT; returns the exit code."""
    arguments = bootstrap.parser(
        "validator",
        "Validate examples.raw against the stream specs: valid examples go to "
        "examples.valid, rejected ones to examples.dead with a reason code. "
        "Configured by DRIFTLINE_* and DRIFTLINE_VALIDATOR_* variables; "
        "SIGTERM stops it gracefully.",
    )
    return bootstrap.run("validator", start, argv=argv, arguments=arguments)


def start(boot: bootstrap.Startup) -> int:
    """Validate until the stop flag is set; then hand the partitions over."""
    from services.common.kafka_client import leave_group
    from services.validator.settings import ValidatorSettings

    settings = boot.settings
    vsettings = ValidatorSettings.load()
    member = vsettings.member(settings)  # validated (and held) before anything starts
    from services.validator.app import run  # Kafka clients are imported only now

    group = vsettings.group(settings.topic_prefix)
    log.info("group %s as static member %s", group, member)
    code = run(boot, vsettings)
    if code == 0 and vsettings.leave_on_stop:
        # a static member keeps its partitions until the session timeout: hand them
        # over now, this replica has stopped (its offsets are committed)
        leave_group(settings, group, member, reason="SIGTERM")
    return code


if __name__ == "__main__":
    sys.exit(main())
