"""``driftline run evaluator`` / ``python -m services.evaluator``: wiring only."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from services.common.errors import ConfigError, DriftlineError
from services.common.logs import configure_logging
from services.common.settings import DriftlineSettings
from services.common.shutdown import GracefulShutdown
from services.common.signing import Keyring
from services.evaluator.app import Evaluator
from services.evaluator.settings import EvaluatorSettings
from services.registry.client import Registry


def main(argv: Sequence[str] | None = None) -> int:
    """Run the evaluator until SIGTERM/SIGINT; returns the exit code."""
    del argv
    try:
        settings = DriftlineSettings.load()
        service = EvaluatorSettings.load()
        keyring = Keyring.from_settings(settings)
        if not keyring.public:
            raise ConfigError(
                "DRIFTLINE_VERIFY_KEYS",
                "is required: the evaluator verifies every model (the registry's public key)",
            )
        if not keyring.can_sign and keyring.state_key is None:
            raise ConfigError(
                "DRIFTLINE_CHECKPOINT_KEY",
                "is required: the evaluator signs its checkpoints with it",
            )
    except ConfigError as exc:
        sys.stderr.write(f"driftline evaluator: error: {exc}\n")
        return 2
    configure_logging("evaluator", fmt=settings.log_format, level=settings.log_level)
    registry = Registry.open(settings)
    try:
        with GracefulShutdown() as stop:
            evaluator = Evaluator(settings, service, registry)
            if service.metrics_port:
                evaluator.metrics.serve(service.metrics_port, service.metrics_host)
            try:
                evaluator.run(stop)
            finally:
                evaluator.close()
                evaluator.metrics.close()
    except DriftlineError as exc:
        sys.stderr.write(f"driftline evaluator: error: {exc}\n")
        return 1
    finally:
        registry.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
