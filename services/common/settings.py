"""Settings shared by every driftline process, read from ``DRIFTLINE_*`` variables.

Build them once in ``main()`` with :meth:`DriftlineSettings.load` and pass them down;
nothing reads the environment at import time. A bad value fails at start-up with a
:class:`~services.common.errors.ConfigError` that names the variable.

>>> s = DriftlineSettings.load(env={"DRIFTLINE_TOPIC_PREFIX": "t1."})
>>> s.bootstrap, s.uses_local_broker, s.topic_prefix
('127.0.0.1:9092', True, 't1.')
>>> DriftlineSettings.load(env={"DRIFTLINE_KAFKA_BOOTSTRAP": "nohostport"})
Traceback (most recent call last):
...
services.common.errors.ConfigError: DRIFTLINE_KAFKA_BOOTSTRAP: ...
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Self

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from services.common import keys
from services.common.errors import ConfigError

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
_TOPIC_CHARS = re.compile(r"^[A-Za-z0-9._-]*$")
_HOST_PORT = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$")


def env_name(prefix: str, field: str) -> str:
    """The environment variable behind a settings field: ``DRIFTLINE_`` + upper-case name."""
    return f"{prefix}{field}".upper()


class SettingsBase(BaseSettings):
    """Base of every driftline settings class: frozen, strict about unknown values.

    Subclasses set ``env_prefix`` (``DRIFTLINE_`` or ``DRIFTLINE_<SERVICE>_``) and are
    built with :meth:`load`, which turns a validation error into a ``ConfigError`` that
    names the environment variable.
    """

    model_config = SettingsConfigDict(env_prefix="DRIFTLINE_", frozen=True, extra="ignore")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # `load` reads the environment itself (so tests can pass an explicit mapping).
        return (init_settings,)

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Self:
        """Build from ``env`` (default: ``os.environ``), with explicit ``overrides`` on top."""
        prefix = str(cls.model_config.get("env_prefix", ""))
        source = os.environ if env is None else env
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            var = env_name(prefix, name)
            if var in source and source[var] != "":
                values[name] = source[var]
        values.update(overrides)
        try:
            return cls(**values)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = err.get("loc") or ("?",)
            field = str(loc[0])
            setting = env_name(prefix, field) if field in cls.model_fields else field
            msg = str(err.get("msg", "invalid value"))
            if field not in cls.model_fields:
                # a model-level check: its message already names the settings involved
                setting = "settings"
            raise ConfigError(setting, msg) from exc


class DriftlineSettings(SettingsBase):
    """Settings every service shares; see the README's configuration reference."""

    kafka_bootstrap: str | None = Field(
        default=None, description="bootstrap servers; when set, nothing starts a local broker"
    )
    topic_prefix: str = Field(default="driftline.", description="prefix of every topic")
    data_dir: Path = Field(default=Path(".driftline"), description="local state directory")
    cache_dir: Path | None = Field(
        default=None, description="download cache (Kafka jars); default ~/.cache/driftline"
    )
    registry_url: str | None = Field(
        default=None,
        description="where the registry is: http(s)://host:port reaches the registry service "
        "over its API; a SQLAlchemy URL opens its database in this process (the registry "
        "service itself, tests, single-process tools)",
    )
    artifacts_url: str | None = Field(default=None, description="where artifacts are stored")
    registry_http_url: str | None = Field(
        default=None,
        description="base URL of the registry's HTTP API (e.g. http://registry:8300); "
        "artifacts not readable locally are fetched from its /artifacts/{sha256}",
    )
    registry_keep_checkpoints: int = Field(
        default=3,
        ge=0,
        le=10_000,
        description="checkpoints kept per owner and key, pruned with every save "
        "(0: keep all until `driftline gc`)",
    )
    registry_keep_online_versions: int = Field(
        default=10,
        ge=0,
        le=100_000,
        description="per model, the newest online versions whose artifacts are kept, pruned "
        "after every online registration; aliased and recently aliased versions and batch "
        "versions are always kept (0: keep all until `driftline gc`)",
    )
    signing_key: SecretStr | None = Field(
        default=None,
        description="Ed25519 private key of a signer (registry, learner, trainer): base64 of "
        "32 bytes or PEM",
    )
    signing_key_id: str | None = None
    verify_keys: SecretStr | None = Field(
        default=None,
        description="public keys that verify artifacts and model events: 'id:<base64>,...'; "
        "'id:hmac:<secret>' keeps artifacts signed with an old HMAC key readable",
    )
    checkpoint_key: SecretStr | None = Field(
        default=None,
        description="HMAC key for the checkpoints of a process that holds no signing key "
        "(the evaluator); it verifies nothing else",
    )
    admin_token: SecretStr | None = None
    service_token: SecretStr | None = Field(
        default=None,
        description="bearer token of the registry's write API: the registry service accepts "
        "it, the learner, trainer and evaluator send it (the admin token stays for people)",
    )
    registry_timeout_s: float = Field(
        default=60.0, gt=0, le=3600, description="how long one request to the registry waits"
    )
    registry_retry_s: float = Field(
        default=5.0,
        ge=0,
        le=3600,
        description="how long a call retries an unreachable registry (with backoff) before "
        "it fails with RegistryUnavailable; callers then retry later themselves",
    )
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    kafka_timeout_s: float = Field(
        default=15.0, gt=0, le=600, description="how long a client waits for the broker"
    )
    kafka_client: Literal["kafka-python", "confluent"] = Field(
        default="kafka-python",
        description="the Kafka client of the hot paths (producer CLI, validator, learner, "
        "evaluator, serving's Kafka path): kafka-python, or confluent (librdkafka, "
        "`pip install 'driftline[confluent]'`)",
    )
    # Kafka security, passed through to kafka-python, faust and confluent-kafka alike.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    kafka_ssl_password: SecretStr | None = None
    kafka_ssl_check_hostname: bool = True
    # Consumer fetch settings, for every kafka-python consumer (see make_consumer).
    kafka_fetch_max_wait_ms: int = Field(
        default=20,
        ge=0,
        le=60_000,
        description="longest the broker holds a fetch for partitions with no data; kafka-python "
        "fetches a partition again only once its buffer is drained, and one fetch per broker is "
        "in flight, so a partition with data waits behind empty ones this long (500 in "
        "kafka-python: 500 ms stalls; 20: twice the learner's throughput)",
    )
    kafka_fetch_min_bytes: int = Field(
        default=1,
        ge=1,
        le=64 * 1024 * 1024,
        description="bytes the broker waits for (up to the max wait) before answering a fetch",
    )
    kafka_max_poll_records: int = Field(
        default=2000,
        ge=1,
        le=1_000_000,
        description="most records one poll returns (services may override)",
    )
    kafka_max_partition_fetch_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        le=1024 * 1024 * 1024,
        description="most bytes one fetch returns per partition",
    )
    kafka_fetch_max_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        le=1024 * 1024 * 1024,
        description="most bytes one fetch returns in all",
    )

    @field_validator("kafka_client")
    @classmethod
    def _client_installed(cls, value: str) -> str:
        if value == "confluent" and importlib.util.find_spec("confluent_kafka") is None:
            raise ValueError(
                "confluent-kafka is not installed; install it with "
                "`pip install 'driftline[confluent]'` or use kafka-python"
            )
        return value

    @field_validator("kafka_bootstrap")
    @classmethod
    def _check_bootstrap(cls, value: str | None) -> str | None:
        if value is None:
            return None
        hosts = [h.strip() for h in value.split(",") if h.strip()]
        if not hosts:
            raise ValueError("is empty; give host:port[,host:port...]")
        for host in hosts:
            match = _HOST_PORT.match(host)
            if not match or not 0 < int(match.group(2)) < 65536:
                raise ValueError(f"{host!r} is not host:port (for example 127.0.0.1:9092)")
        return ",".join(hosts)

    @field_validator("topic_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        if not _TOPIC_CHARS.match(value) or len(value) > 180:
            raise ValueError("may hold only letters, digits, '.', '_' and '-' (at most 180)")
        return value

    @field_validator("kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile")
    @classmethod
    def _file_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"file {str(value)!r} does not exist")
        return value

    @field_validator("signing_key")
    @classmethod
    def _private_key_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            keys.load_private_key(value.get_secret_value())
        return value

    @field_validator("checkpoint_key")
    @classmethod
    def _key_length(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < keys.MIN_SECRET:
            raise ValueError(f"must be at least {keys.MIN_SECRET} characters")
        return value

    @field_validator("verify_keys")
    @classmethod
    def _verify_keys_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            keys.parse_verify_keys(value.get_secret_value())
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> Self:
        if (self.signing_key is None) != (self.signing_key_id is None):
            raise ValueError(
                "DRIFTLINE_SIGNING_KEY and DRIFTLINE_SIGNING_KEY_ID must be set together"
            )
        private = self.private_key()
        if private is not None:
            listed = self.verify_key_set()
            own = keys.public_text(private.public_key())
            other = listed.public.get(str(self.signing_key_id))
            if str(self.signing_key_id) in listed.legacy or (
                other is not None and keys.public_text(other) != own
            ):
                raise ValueError(
                    f"DRIFTLINE_VERIFY_KEYS lists another key under the signing key's id "
                    f"{self.signing_key_id!r} (DRIFTLINE_SIGNING_KEY_ID)"
                )
        request_timeout_ms = max(int(self.kafka_timeout_s * 1000), 5_000)
        if self.kafka_fetch_max_wait_ms >= request_timeout_ms:
            raise ValueError(
                f"DRIFTLINE_KAFKA_FETCH_MAX_WAIT_MS={self.kafka_fetch_max_wait_ms} must be below "
                f"the request timeout ({request_timeout_ms} ms, from DRIFTLINE_KAFKA_TIMEOUT_S)"
            )
        if self.kafka_max_partition_fetch_bytes > self.kafka_fetch_max_bytes:
            raise ValueError(
                f"DRIFTLINE_KAFKA_MAX_PARTITION_FETCH_BYTES={self.kafka_max_partition_fetch_bytes} "
                f"is larger than DRIFTLINE_KAFKA_FETCH_MAX_BYTES={self.kafka_fetch_max_bytes}"
            )
        if self.kafka_security_protocol.startswith("SASL_"):
            missing = [
                env_name("DRIFTLINE_", f)
                for f in ("kafka_sasl_mechanism", "kafka_sasl_username", "kafka_sasl_password")
                if getattr(self, f) is None
            ]
            if missing:
                raise ValueError(
                    f"DRIFTLINE_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} "
                    f"needs {', '.join(missing)}"
                )
        return self

    # -- derived values -------------------------------------------------------------

    @property
    def uses_local_broker(self) -> bool:
        """True when no bootstrap is configured, so the local broker is used."""
        return self.kafka_bootstrap is None

    @property
    def bootstrap(self) -> str:
        """The bootstrap servers to connect to."""
        return self.kafka_bootstrap or DEFAULT_BOOTSTRAP

    @property
    def data_path(self) -> Path:
        """The data directory as an absolute path."""
        return self.data_dir.expanduser().resolve()

    @property
    def cache_path(self) -> Path:
        """The download cache as an absolute path."""
        if self.cache_dir is not None:
            return self.cache_dir.expanduser().resolve()
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = Path(xdg) if xdg else Path.home() / ".cache"
        return base / "driftline"

    @property
    def registry_dsn(self) -> str:
        """The registry's SQLAlchemy URL (SQLite in the data dir by default)."""
        return self.registry_url or f"sqlite:///{self.data_path / 'registry.db'}"

    @property
    def registry_api_url(self) -> str | None:
        """The registry service's base URL: ``DRIFTLINE_REGISTRY_HTTP_URL``, or
        ``DRIFTLINE_REGISTRY_URL`` when that is ``http(s)://``."""
        if self.registry_http_url:
            return self.registry_http_url
        url = self.registry_url
        if url is not None and url.lower().startswith(("http://", "https://")):
            return url
        return None

    @property
    def artifacts_location(self) -> str:
        """Where artifacts live (``file://`` URL; the data dir by default)."""
        return self.artifacts_url or (self.data_path / "artifacts").as_uri()

    def private_key(self) -> Ed25519PrivateKey | None:
        """The Ed25519 key of ``DRIFTLINE_SIGNING_KEY`` (None: this process only verifies)."""
        if self.signing_key is None:
            return None
        return keys.load_private_key(self.signing_key.get_secret_value())

    def verify_key_set(self) -> keys.VerifyKeys:
        """The keys of ``DRIFTLINE_VERIFY_KEYS`` (the signing key's public half not included)."""
        if self.verify_keys is None:
            return keys.VerifyKeys()
        return keys.parse_verify_keys(self.verify_keys.get_secret_value())
