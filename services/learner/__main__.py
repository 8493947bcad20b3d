"""``driftline run learner`` / ``python -m services.learner``: wiring only.

Started by :mod:`services.common.bootstrap` (signals first, settings, logging, exit
codes); everything heavy is imported once the handlers are in place.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from services.common import bootstrap

log = logging.getLogger("services.learner")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the learner until SIGTERM/SIGINT; returns the exit code."""
    arguments = bootstrap.parser(
        "learner",
        "Learn every stream online from examples.valid: prequential metrics, drift "
        "detection, checkpoints and online snapshots. Configured by DRIFTLINE_* and "
        "DRIFTLINE_LEARNER_* variables; SIGTERM stops it gracefully.",
    )
    return bootstrap.run("learner", start, argv=argv, arguments=arguments)


def start(boot: bootstrap.Startup) -> int:
    """Open the registry, then learn until the stop flag is set."""
    from services.common.errors import ConfigError, Fenced
    from services.common.kafka_backend import is_fenced
    from services.common.kafka_client import leave_group
    from services.learner.app import Learner
    from services.learner.settings import LearnerSettings
    from services.registry.client import Registry

    settings = boot.settings
    service = LearnerSettings.load()
    if settings.signing_key is None:
        raise ConfigError(
            "DRIFTLINE_SIGNING_KEY", "is required: the learner signs checkpoints and models"
        )
    member = service.member(settings)  # validated (and held) before anything starts
    log.info("group %s as static member %s", service.group_id, member)
    # The learner waits out a registry outage itself (it keeps learning and retries with
    # backoff), so a call gives up quickly instead of holding up the poll loop.
    quick = settings.model_copy(update={"registry_retry_s": min(settings.registry_retry_s, 0.5)})
    with boot.uninterrupted():  # the registry's migrations, when it is opened in-process
        registry = Registry.open(quick)
    try:
        learner = Learner(settings, service, registry)
        try:
            boot.serve_metrics(learner.metrics, service.metrics_port, service.metrics_host)
            boot.running()
            bootstrap.quiet_collector()  # start-up is over: the hot loop follows
            learner.run(boot.stop)
        finally:
            learner.close()
        if service.leave_on_stop:
            # a static member keeps its partitions until the session timeout: hand
            # them over now, this replica is stopping (checkpointed and committed)
            leave_group(settings, service.group_id, member, reason="SIGTERM")
    except Exception as exc:
        if not is_fenced(exc):
            raise
        raise Fenced(
            f"another learner joined group {service.group_id} as {member!r} and fenced this "
            "one; give each replica its own DRIFTLINE_LEARNER_INSTANCE_ID"
        ) from exc
    finally:
        registry.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
