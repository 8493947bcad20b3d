"""Serving's edge: the model subscriber, the HTTP server (uvicorn in a thread), the Kafka
path (``predictions.requests`` -> ``predictions``), shadow pairs and load acknowledgements.

* Models: a :class:`~services.common.subscriber.ModelSubscriber` follows the served alias
  (``champion``) and, when shadowing, the ``challenger``; it verifies, checks against the
  stream's current spec (read from the ``streams`` topic) and warms up every version
  before swapping it in. Each swap or refusal is acknowledged on ``models.acks``
  (:class:`~schemas.ModelLoaded` / :class:`~schemas.ModelLoadFailed`, key: replica id).
* Kafka path (:mod:`services.serving.request_loop`): a consumer group reads
  ``predictions.requests`` once the subscriber has caught up, answers each request with
  the champion (one ``predict_many`` per stream and batch) and sends a
  :class:`~schemas.Prediction` stamped with the version; the offsets are committed after
  the producer has flushed (at least once; the prediction's ``event_id`` is derived from
  the request's, so a redelivery repeats the same id). An unusable request (not JSON,
  against the contract, features the model refuses, a row the model fails on, any error
  while it is handled) goes to ``events.dead`` with a reason code and is counted
  (``serving_dead_letters_total``); the other requests of its batch are answered and the
  loop goes on.
* Shadow: with a challenger loaded, the same rows are scored by it in another thread and
  each pair goes to ``shadow`` (for HTTP requests, only rows that carry example ids).
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading
import time
from collections.abc import Collection, Sequence
from typing import Any

import uvicorn

from schemas import (
    Event,
    FeatureSpec,
    ModelLoaded,
    ModelLoadFailed,
    Topics,
)
from services.common.backoff import Backoff
from services.common.codec import encode, event_key
from services.common.dead_letters import DeadLetters
from services.common.errors import BrokerError, ConfigError
from services.common.kafka_backend import open_producer
from services.common.listen import BACKLOG, listen
from services.common.metrics import Metrics
from services.common.online_follower import FollowMetrics, InFlight
from services.common.online_followers import Followers
from services.common.settings import DriftlineSettings
from services.common.shutdown import GracefulShutdown
from services.common.signing import Keyring
from services.common.stream_configs import StreamConfigs
from services.common.subscriber import LoadedModel, LoadFailure, ModelSubscriber
from services.serving.api import create_app
from services.serving.metrics import ServingMetrics
from services.serving.request_loop import RequestLoop
from services.serving.settings import ServingSettings
from services.serving.shadow import ShadowScorer

log = logging.getLogger("services.serving")

GRACE_S = 1.0  # SIGTERM to exit, at most (DESIGN.md)
HTTP_GRACE_S = 0.4  # of which open HTTP requests get this long
SWITCH_INTERVAL_S = 0.001  # the GIL switch interval while online models learn in threads
EXIT_MARGIN_S = 0.2  # of which the process' own exit gets this long


class Serving:
    """One serving replica: every part but the HTTP server's thread.

    Parameters
    ----------
    settings, service
        The shared settings and ``DRIFTLINE_SERVING_*``.
    metrics
        The process' metrics registry (a new one by default).
    """

    def __init__(
        self,
        settings: DriftlineSettings,
        service: ServingSettings,
        *,
        metrics: Metrics | None = None,
    ) -> None:
        if not Keyring.from_settings(settings).public:
            raise ConfigError(
                "DRIFTLINE_VERIFY_KEYS",
                "is required: serving verifies every model event and artifact with the "
                "registry's public key before it follows or loads it",
            )
        # Import the model libraries while this constructor and the subscriber talk to
        # Kafka: a restart's first load otherwise pays for River's import (about 1 s).
        self._preloader = threading.Thread(target=_preload, name="preload", daemon=True)
        self._preloader.start()
        self.settings = settings
        self.service = service
        self.replica_id = service.replica()
        self.topics = Topics(settings.topic_prefix)
        self.metrics = ServingMetrics(metrics or Metrics("serving"))
        self.followed = service.followed_aliases()
        self._nullable: dict[str, frozenset[str]] = {}
        self._specs: dict[str, tuple[FeatureSpec, ...]] = {}
        self._spec_versions: dict[str, int | None] = {}
        # the Kafka path's producer: DRIFTLINE_KAFKA_CLIENT (kafka-python or confluent)
        self.producer = open_producer(settings, client_id="driftline-serving", linger_ms=2)
        self.dead_letters = DeadLetters(
            self.producer,
            self.topics.name("events.dead"),
            service="serving",
            counter=self.metrics.dead,
        )
        self.configs = StreamConfigs(settings, client_id="driftline-serving")
        self.configs.catch_up()
        self.in_flight = InFlight()  # requests answered now: followers learn between them
        if service.follow:
            # A request that arrives while a follower is inside one learn_one waits for
            # the GIL at most this long (the interpreter's 5 ms by default).
            sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
        self.followers = (
            Followers(
                settings,
                metrics=FollowMetrics(self.metrics.metrics, "serving"),
                client_id=f"driftline-serving-follow-{self.replica_id}",
                catch_up_s=service.follow_catch_up_s,
                in_flight=self.in_flight,
            )
            if service.follow
            else None
        )
        self.subscriber = ModelSubscriber(
            settings,
            models=service.model_filter(),
            aliases=self.followed,
            pins=service.pin_map(),
            features=self._features(),
            on_swap=self._swapped,
            on_failure=self._refused,
            on_remove=self._removed,
            on_refusal=lambda kind: self.metrics.events_refused.labels(kind=kind).inc(),
            client_id="driftline-serving",
            prepare=self.followers.prepare if self.followers is not None else None,
        )
        if self.followers is not None:  # a first load answers while its follower catches up
            self.followers.replace = self.subscriber.replace
        self.shadow = (
            ShadowScorer(self._send, self.metrics, size=service.shadow_queue)
            if len(self.followed) > 1
            else None
        )
        self.requests = RequestLoop(self) if service.kafka else None

    # -- life cycle -----------------------------------------------------------------

    def start(self) -> None:
        """Start following models, shadowing and (once caught up) the Kafka path."""
        self.subscriber.start()
        if self.shadow is not None:
            self.shadow.start()
        if self.requests is not None:
            self.requests.start()

    def refresh_specs(self) -> None:
        """Apply new stream configs: the compatibility check and nullable features."""
        if self.configs.refresh():
            self.subscriber.features = self._features()

    def nullable(self, model: str) -> Collection[str]:
        """Features of ``model`` that may be null, by its stream's current spec."""
        return self._nullable.get(model, frozenset())

    def spec(self, model: str) -> Sequence[FeatureSpec]:
        """The features of ``model``'s stream spec in force (none when unknown)."""
        return self._specs.get(model, ())

    def stop(self, deadline: float) -> None:
        """Stop the Kafka path, drain shadowing, stop the subscriber, flush; by ``deadline``
        (a ``time.monotonic()`` value)."""

        def left(share: float = 1.0) -> float:
            return max(0.1, (deadline - time.monotonic()) * share)

        if self.requests is not None:
            self.requests.signal()  # both poll loops wind down together, not one by one
            self.subscriber.stop(min(2.0, left(0.3)))
            self.requests.stop(left(0.5))
        if self.shadow is not None:
            self.shadow.stop(min(2.0, left(0.3)))
        self.subscriber.stop(min(2.0, left(0.3)))
        if self.followers is not None:
            self.followers.stop(min(0.5, left(0.3)))
        try:
            self.producer.flush(timeout=left(0.5))
            self.producer.close(timeout=left(0.5))
        except Exception as exc:  # noqa: BLE001 - shutting down: report, do not hang
            log.warning("flushing the producer at shutdown failed: %s", exc)
        self.configs.close()

    # -- models ---------------------------------------------------------------------

    def spec_versions(self) -> dict[str, int | None]:
        """The stream config version in force per stream (a snapshot: any thread)."""
        return self._spec_versions

    def _features(self) -> dict[str, Any]:
        configs = self.configs.all()
        self._spec_versions = {name: cfg.version for name, cfg in configs.items()}
        self._nullable = {
            name: frozenset(f.name for f in cfg.spec.features if f.nullable)
            for name, cfg in configs.items()
        }
        self._specs = {name: tuple(cfg.spec.features) for name, cfg in configs.items()}
        return {name: cfg.spec.features for name, cfg in configs.items()}

    def _swapped(self, new: LoadedModel, old: LoadedModel | None) -> None:
        slot = new.alias or "pinned"
        self.metrics.model_version.labels(model=new.model, alias=slot).set(new.version)
        self.metrics.swaps.labels(model=new.model, alias=slot).inc()
        self.metrics.load_seconds.labels(model=new.model).observe(new.load_ms / 1000)
        self._ack(
            ModelLoaded(
                replica_id=self.replica_id,
                model=new.model,
                version=new.version,
                alias=new.alias,
                load_ms=new.load_ms,
            )
        )

    def _refused(self, failure: LoadFailure) -> None:
        self.metrics.load_failures.labels(model=failure.model, reason=failure.reason).inc()
        self._ack(
            ModelLoadFailed(
                replica_id=self.replica_id,
                model=failure.model,
                version=failure.version,
                alias=failure.alias,
                reason=failure.reason,
                detail=failure.detail[:2000],
            )
        )

    def _removed(self, old: LoadedModel) -> None:
        if self.followers is not None:
            self.followers.removed(old)
        try:
            self.metrics.model_version.remove(old.model, old.alias or "pinned")
        except KeyError:
            pass

    def _ack(self, event: ModelLoaded | ModelLoadFailed) -> None:
        self.metrics.acks.labels(kind=event.event_type).inc()
        self._send(event)

    def _send(self, event: Event) -> None:
        suffix = {
            "model_loaded": "models.acks",
            "model_load_failed": "models.acks",
            "prediction": "predictions",
            "shadow_pair": "shadow",
            "dead_letter": "events.dead",
        }[event.type_name()]
        self.producer.send(self.topics.name(suffix), key=event_key(event), value=encode(event))


def _preload() -> None:
    """Import the model libraries now, so the first swap does not pay for them (River's
    import alone takes seconds); unpickling a model imports exactly what it needs."""
    for name in ("river.compose", "river.preprocessing", "river.linear_model", "sklearn.base"):
        try:
            importlib.import_module(name)
        except ImportError:  # a flavor not installed: its models will say so when loaded
            log.debug("cannot preload %s", name)


class _Counted:
    """ASGI middleware: each HTTP request counts as in flight from its first byte read
    to its last byte sent (followers learn between requests)."""

    def __init__(self, app: Any, in_flight: InFlight) -> None:
        self.app = app
        self.in_flight = in_flight

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with self.in_flight:
            await self.app(scope, receive, send)


class _Stopped(Exception):
    """SIGTERM arrived while the replica was still starting."""


def _wait_until_ready(serving: Serving, stop: GracefulShutdown, timeout_s: float) -> bool:
    """Wait until the subscriber has read the models topic and loaded the served versions,
    and their online followers have caught up with the stream (or ``timeout_s`` passes:
    HTTP then opens and ``/readyz`` says what is missing), so a starting replica never
    answers with a snapshot far behind the learner.

    Returns False when a shutdown was requested meanwhile. HTTP stays closed (connections
    refused) until then, so a client never meets a starting replica's 503 or 404.
    """
    started = time.monotonic()
    subscriber, followers = serving.subscriber, serving.followers
    while not subscriber.caught_up() or (followers is not None and followers.catching_up()):
        if stop.wait(0.01):
            return False
        if not subscriber.running:
            log.error("the model subscriber stopped while starting; opening HTTP to say so")
            return True
        if time.monotonic() - started > timeout_s:
            log.warning(
                "the served versions were not loaded within %.0fs "
                "(DRIFTLINE_SERVING_READY_TIMEOUT_S); opening HTTP, /readyz answers 503",
                timeout_s,
            )
            return True
    log.info("models loaded in %.2fs: opening HTTP", time.monotonic() - started)
    return True


def serve(settings: DriftlineSettings, service: ServingSettings) -> int:
    """Run one replica until SIGTERM/SIGINT; returns the exit code.

    HTTP opens once the served versions are loaded (see :func:`_wait_until_ready`); on
    SIGTERM open requests get ``HTTP_GRACE_S``, then the Kafka path, shadowing and the
    subscriber stop together and the producer is flushed, all within ``GRACE_S``.
    """
    with GracefulShutdown() as stop:
        try:
            # bound now (a busy port fails at once) but refusing connections until ready
            sock = listen(service.host, service.port, accept=False)
        except OSError as exc:
            raise ConfigError(
                "DRIFTLINE_SERVING_PORT", f"cannot listen on {service.host}:{service.port}: {exc}"
            ) from exc
        try:
            serving = Serving(settings, service)
        except BaseException:
            sock.close()
            raise
        app = create_app(
            serving.subscriber,
            metrics=serving.metrics,
            replica_id=serving.replica_id,
            shadow=serving.shadow,
            nullable=serving.nullable,
            specs=serving.spec_versions,
            spec=serving.spec,
            strict_spec=service.strict_spec,
            max_body_bytes=service.max_body_bytes,
        )
        server = uvicorn.Server(
            uvicorn.Config(
                _Counted(app, serving.in_flight),
                log_config=None,
                lifespan="off",
                access_log=False,
                timeout_graceful_shutdown=1,  # the join below bounds it more tightly
            )
        )
        # uvicorn installs no signal handlers off the main thread: ours decide.
        http = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="http", daemon=True
        )
        host, port = sock.getsockname()[:2]
        code = 0
        deadline = 0.0
        try:
            serving.start()
            if not _wait_until_ready(serving, stop, service.ready_timeout_s):
                raise _Stopped
            sock.listen(BACKLOG)
            http.start()
            log.info(
                "serving %s on http://%s:%d as %s (Kafka path %s)",
                "/".join(serving.followed),
                host,
                port,
                serving.replica_id,
                "on" if serving.requests else "off",
            )
            backoff, retry_at = Backoff(max_s=10.0), 0.0
            while not stop.wait(0.5):
                if not http.is_alive():
                    log.error("the HTTP server stopped on its own")
                    code = 1
                    break
                if time.monotonic() < retry_at:
                    continue
                try:
                    serving.refresh_specs()
                except BrokerError as exc:
                    retry_at = time.monotonic() + backoff.failed()
                    if backoff.should_log():
                        log.warning(
                            "reading stream configs failed (%d in a row): %s", backoff.failures, exc
                        )
                else:
                    backoff.succeeded()
            deadline = time.monotonic() + GRACE_S - EXIT_MARGIN_S
            log.info("stopping: finishing open requests")
        except _Stopped:
            log.info("stopping before HTTP opened")
        finally:
            if not deadline:
                deadline = time.monotonic() + GRACE_S - EXIT_MARGIN_S
            server.should_exit = True
            if http.is_alive():
                http.join(max(0.1, min(HTTP_GRACE_S, deadline - time.monotonic() - 0.3)))
            serving.stop(deadline)
            sock.close()
        log.info("serving stopped")
        return code
