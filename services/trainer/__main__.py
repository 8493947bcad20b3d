"""``driftline run trainer`` and ``python -m services.trainer``: start the trainer.

Settings come from the environment (``DRIFTLINE_*`` and ``DRIFTLINE_TRAINER_*``);
the only argument is ``--help``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from services.common.errors import DriftlineError
from services.common.logs import configure_logging
from services.common.settings import DriftlineSettings
from services.trainer.settings import TrainerSettings

log = logging.getLogger("services.trainer")


def main(argv: Sequence[str] | None = None) -> int:
    """Build the settings, configure logging and run the trainer; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="driftline run trainer",
        description=(
            "Retrain on drift: each event on the drift topic replays the stream's window "
            "from examples.valid, fits scikit-learn candidates, and promotes a winner that "
            "beats the champion fairly. Configured by DRIFTLINE_* and DRIFTLINE_TRAINER_* "
            "variables; SIGTERM stops it gracefully."
        ),
    )
    parser.parse_args(list(argv) if argv is not None else sys.argv[1:])
    try:
        settings = DriftlineSettings.load()
        tsettings = TrainerSettings.load()
    except DriftlineError as exc:
        print(f"trainer: error: {exc}", file=sys.stderr)  # noqa: T201 - before logging
        return 2
    configure_logging("trainer", fmt=settings.log_format, level=settings.log_level)
    from services.trainer.app import run  # faust is imported only when it runs

    try:
        return run(settings, tsettings)
    except DriftlineError as exc:
        log.error("%s", exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
