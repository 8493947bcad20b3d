"""The validator's start: ``examples.raw`` -> judge -> ``examples.valid`` | ``examples.dead``.

The topics it needs are checked first (:func:`check_topics`), then the engine runs: the
batch loop of :mod:`services.validator.loop` (the default, on either Kafka client) or the
faust agent of :mod:`services.validator.faust_agent` (``DRIFTLINE_VALIDATOR_ENGINE=faust``).
The pieces both share: :mod:`~services.validator.batch` (judge, route, the duplicate
index), :mod:`~services.validator.index_rebuild` and :mod:`~services.validator.spec_feed`.
"""

from __future__ import annotations

import logging

from schemas import Topics
from services.common.bootstrap import Startup
from services.common.errors import ConfigError
from services.common.faust_app import run_worker
from services.common.kafka_client import make_consumer
from services.common.settings import DriftlineSettings
from services.validator.batch import Validator
from services.validator.faust_agent import build_app
from services.validator.metrics import ValidatorMetrics
from services.validator.settings import ValidatorSettings
from services.validator.spec_feed import SpecFeed
from services.validator.specs import SpecRegistry

log = logging.getLogger(__name__)


def start_feed(
    boot: Startup,
    vsettings: ValidatorSettings,
    registry: SpecRegistry,
    feed: SpecFeed,
    metrics: ValidatorMetrics,
) -> None:
    """Read every stream config to the topic's end, open the metrics endpoint, then
    follow the topic (both engines start so)."""
    read = feed.catch_up(registry)
    metrics.set_spec_versions(registry.versions())
    log.info(
        "read %d stream configs: %s",
        read,
        ", ".join(f"{s} v{v}" for s, v in registry.versions().items()) or "none yet",
    )
    boot.serve_metrics(metrics.metrics, vsettings.metrics_port, vsettings.metrics_host)
    feed.start()


def check_topics(settings: DriftlineSettings) -> int:
    """Fail fast, naming the fix, when a topic the validator needs is missing; returns the
    valid topic's partition count, over which streams are routed."""
    topics = Topics(settings.topic_prefix)
    consumer = make_consumer(settings, group_id=None, client_id="driftline-validator")
    try:
        counts = {}
        for suffix in ("examples.raw", "examples.valid", "examples.dead", "streams"):
            parts = consumer.partitions_for_topic(topics.name(suffix))
            if not parts:
                raise ConfigError(
                    "topics",
                    f"topic {topics.name(suffix)!r} does not exist on {settings.bootstrap}; "
                    "run `driftline topics create`",
                )
            counts[suffix] = len(parts)
    finally:
        consumer.close()
    return counts["examples.valid"]


def run(boot: Startup, vsettings: ValidatorSettings) -> int:
    """Run the validator until SIGTERM/SIGINT; returns the exit code.

    ``DRIFTLINE_VALIDATOR_ENGINE``: the batch loop of :mod:`services.validator.loop` (auto,
    the default, on either Kafka client), or this faust app (faust).
    """
    settings = boot.settings
    if vsettings.uses_loop(settings.kafka_client):
        from services.validator.loop import run_loop

        return run_loop(boot, vsettings)
    topics = Topics(settings.topic_prefix)
    if settings.log_level != "DEBUG":
        # faust and mode narrate every service start and stop at INFO; ours says what matters.
        for chatty in ("faust", "mode"):
            logging.getLogger(chatty).setLevel(logging.WARNING)
    valid_partitions = check_topics(settings)
    metrics = ValidatorMetrics()
    registry = SpecRegistry()
    feed = SpecFeed(settings)
    try:
        start_feed(boot, vsettings, registry, feed, metrics)
        validator = Validator(settings, vsettings, registry, feed, metrics, valid_partitions)
        app = build_app(settings, vsettings, validator)
        log.info(
            "validating %s -> %s | %s (group %s)",
            topics.name("examples.raw"),
            validator.valid_topic,
            validator.dead_topic,
            vsettings.group(settings.topic_prefix),
        )
        boot.running()
        return run_worker(app, boot.stop, loglevel=settings.log_level)
    finally:
        feed.close()
