"""``driftline run learner`` / ``python -m services.learner``: wiring only."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from services.common.errors import ConfigError, DriftlineError
from services.common.kafka_backend import is_fenced
from services.common.kafka_client import leave_group
from services.common.logs import configure_logging
from services.common.settings import DriftlineSettings
from services.common.shutdown import GracefulShutdown
from services.learner.app import Learner
from services.learner.settings import LearnerSettings
from services.registry.client import Registry

log = logging.getLogger("services.learner")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the learner until SIGTERM/SIGINT; returns the exit code."""
    del argv
    try:
        settings = DriftlineSettings.load()
        service = LearnerSettings.load()
        if settings.signing_key is None:
            raise ConfigError(
                "DRIFTLINE_SIGNING_KEY", "is required: the learner signs checkpoints and models"
            )
        member = service.member(settings)  # validated (and held) before anything starts
    except ConfigError as exc:
        sys.stderr.write(f"driftline learner: error: {exc}\n")
        return 2
    configure_logging("learner", fmt=settings.log_format, level=settings.log_level)
    log.info("group %s as static member %s", service.group_id, member)
    # The learner waits out a registry outage itself (it keeps learning and retries with
    # backoff), so a call gives up quickly instead of holding up the poll loop.
    quick = settings.model_copy(update={"registry_retry_s": min(settings.registry_retry_s, 0.5)})
    registry = Registry.open(quick)
    try:
        with GracefulShutdown() as stop:
            learner = Learner(settings, service, registry)
            if service.metrics_port:
                learner.metrics.serve(service.metrics_port, service.metrics_host)
            try:
                learner.run(stop)
            finally:
                learner.close()
                learner.metrics.close()
            if service.leave_on_stop:
                # a static member keeps its partitions until the session timeout: hand
                # them over now, this replica is stopping (checkpointed and committed)
                leave_group(settings, service.group_id, member, reason="SIGTERM")
    except DriftlineError as exc:
        sys.stderr.write(f"driftline learner: error: {exc}\n")
        return 1
    except Exception as exc:
        if not is_fenced(exc):
            raise
        sys.stderr.write(
            f"driftline learner: error: another learner joined group {service.group_id} as "
            f"{member!r} and fenced this one; give each replica its own "
            "DRIFTLINE_LEARNER_INSTANCE_ID\n"
        )
        return 3
    finally:
        registry.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
