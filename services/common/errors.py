"""The project's exceptions.

Every error driftline raises on purpose derives from :class:`DriftlineError`;
foreign errors are wrapped with ``raise ... from exc``::

    DriftlineError
    ├── ConfigError                 a setting is missing or invalid (names the setting)
    ├── BrokerError                 Kafka cannot be reached or refused a request
    │   ├── BrokerUnavailable       no broker answered within the deadline
    │   └── DataExpired             offsets asked for have left the topic's retention
    ├── Fenced                      another replica took this one's static group membership
    ├── LocalBrokerError            the local broker could not be fetched, started or stopped
    └── CodecError                  bytes that are not a valid event (carries a reason code)
        ├── UnparseableEvent        not UTF-8 or not JSON
        ├── ContractViolation       JSON that breaks the event contract
        └── UnsupportedSchemaVersion  a schema_version newer than this code knows
"""

from __future__ import annotations

from schemas.dead_letter import ReasonCode


class DriftlineError(Exception):
    """Root of every error driftline raises on purpose."""


class ConfigError(DriftlineError):
    """A setting is missing or invalid; the message names the setting."""

    def __init__(self, setting: str, problem: str) -> None:
        self.setting = setting
        self.problem = problem
        super().__init__(f"{setting}: {problem}")


class BrokerError(DriftlineError):
    """Kafka cannot be reached or refused a request."""


class BrokerUnavailable(BrokerError):
    """No broker answered at the configured bootstrap address within the deadline."""


class DataExpired(BrokerError):
    """Records asked for by offset are no longer on the topic (retention removed them)."""


class Fenced(DriftlineError):
    """Another replica joined the consumer group under this one's static member id."""


class LocalBrokerError(DriftlineError):
    """The local development broker could not be fetched, started or stopped."""


class CodecError(DriftlineError):
    """Bytes that cannot be turned into the expected event.

    ``reason`` is the dead-letter reason code that a consumer should publish.
    """

    reason: ReasonCode = ReasonCode.CONTRACT_VIOLATION

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(detail)


class UnparseableEvent(CodecError):
    """The bytes are not UTF-8 or not JSON."""

    reason = ReasonCode.UNPARSEABLE


class ContractViolation(CodecError):
    """Valid JSON that breaks the event contract (missing, extra or mistyped fields)."""

    reason = ReasonCode.CONTRACT_VIOLATION


class UnsupportedSchemaVersion(CodecError):
    """The event's ``schema_version`` is newer than the one this code knows."""

    reason = ReasonCode.UNSUPPORTED_SCHEMA_VERSION
