"""``driftline run trainer`` and ``python -m services.trainer``: start the trainer.

Settings come from the environment (``DRIFTLINE_*`` and ``DRIFTLINE_TRAINER_*``);
the only argument is ``--help``. Started by :mod:`services.common.bootstrap` (signals
first, settings, logging, exit codes); faust is imported once the handlers are in place.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from services.common import bootstrap


def main(argv: Sequence[str] | None = None) -> int:
    """Run the trainer until SIGTERM/SIGINT; returns the exit code."""
    arguments = bootstrap.parser(
        "trainer",
        "Retrain on drift: each event on the drift topic replays the stream's window "
        "from examples.valid, fits scikit-learn candidates, and promotes a winner that "
        "beats the champion fairly. Configured by DRIFTLINE_* and DRIFTLINE_TRAINER_* "
        "variables; SIGTERM stops it gracefully.",
    )
    return bootstrap.run("trainer", start, argv=argv, arguments=arguments)


def start(boot: bootstrap.Startup) -> int:
    """Train on drift until the stop flag is set."""
    from services.trainer.settings import TrainerSettings

    tsettings = TrainerSettings.load()
    from services.trainer.app import run  # faust is imported only when it runs

    return run(boot, tsettings)


if __name__ == "__main__":
    sys.exit(main())
