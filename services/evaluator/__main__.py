"""``driftline run evaluator`` / ``python -m services.evaluator``: wiring only.

Started by :mod:`services.common.bootstrap` (signals first, settings, logging, exit
codes); everything heavy is imported once the handlers are in place.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from services.common import bootstrap


def main(argv: Sequence[str] | None = None) -> int:
    """Run the evaluator until SIGTERM/SIGINT; returns the exit code."""
    arguments = bootstrap.parser(
        "evaluator",
        "Score the served versions on labelled examples, decide challenger -> champion "
        "and roll back. Configured by DRIFTLINE_* and DRIFTLINE_EVALUATOR_* variables; "
        "SIGTERM stops it gracefully.",
    )
    return bootstrap.run("evaluator", start, argv=argv, arguments=arguments)


def start(boot: bootstrap.Startup) -> int:
    """Check the keys, open the registry, then evaluate until the stop flag is set."""
    from services.common.errors import ConfigError
    from services.common.signing import Keyring
    from services.evaluator.app import Evaluator
    from services.evaluator.settings import EvaluatorSettings
    from services.registry.client import Registry

    settings = boot.settings
    service = EvaluatorSettings.load()
    keyring = Keyring.from_settings(settings)
    if not keyring.public:
        raise ConfigError(
            "DRIFTLINE_VERIFY_KEYS",
            "is required: the evaluator verifies every model (the registry's public key)",
        )
    if not keyring.can_sign and keyring.state_key is None:
        raise ConfigError(
            "DRIFTLINE_CHECKPOINT_KEY", "is required: the evaluator signs its checkpoints with it"
        )
    if service.nice:  # once the configuration is known good: a refused start changes nothing
        from services.common.priority import lower_priority

        lower_priority(service.nice)
    with boot.uninterrupted():  # the registry's migrations, when it is opened in-process
        registry = Registry.open(settings)
    try:
        evaluator = Evaluator(settings, service, registry)
        try:
            boot.serve_metrics(evaluator.metrics, service.metrics_port, service.metrics_host)
            boot.running()
            evaluator.run(boot.stop)
        finally:
            evaluator.close()
    finally:
        registry.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
