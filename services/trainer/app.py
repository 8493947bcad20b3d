"""The trainer's faust edge: ``drift`` -> :class:`~services.trainer.runner.Trainer`.

The agent decodes each drift event, hands it to the trainer in a thread (the registry
and the replay block), and the trainer fits candidates in a process pool, so the event
loop keeps heartbeating through runs of minutes. The consumer's max poll interval is set
above ``DRIFTLINE_TRAINER_MAX_RUN_S``.

Delivery is at-least-once: faust commits an event's offset only after the agent moved
past it, so a trainer killed mid-run sees the event again on restart and the run resumes
(see :mod:`services.trainer.runner` for why it never trains or publishes twice). An
event that cannot be decoded, names an unknown stream or makes the trainer fail goes to
``events.dead`` with a reason code (faust would otherwise ack and lose it).
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import importlib
import logging
import multiprocessing
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from schemas import CATALOGUE, ReasonCode, StreamConfig, Topics
from schemas.drift import DriftDetected, RetrainRequested
from services.common.bootstrap import Startup
from services.common.codec import dead_letter, decode, encode
from services.common.errors import CodecError, ConfigError
from services.common.faust_app import make_app, raw_topic, run_worker
from services.common.kafka_client import make_consumer
from services.common.logs import at
from services.common.settings import DriftlineSettings
from services.common.stream_configs import StreamConfigs
from services.registry.client import Registry
from services.trainer import train
from services.trainer.drift_tail import DriftTail
from services.trainer.metrics import TrainerMetrics
from services.trainer.replay import KafkaReplay
from services.trainer.runner import SERVICE, Trainer
from services.trainer.settings import TrainerSettings
from services.trainer.triggers import UnknownStream

log = logging.getLogger(__name__)
T = TypeVar("T")


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn`` in a daemon thread (it never holds up the process's exit) and await it."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(value: Any, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)

    def work() -> None:
        try:
            value = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
            loop.call_soon_threadsafe(settle, None, exc)
        else:
            loop.call_soon_threadsafe(settle, value, None)

    threading.Thread(target=work, name="trainer-run", daemon=True).start()
    return await future


class Configs:
    """The streams topic followed on demand (thread-safe: runs of two streams may ask)."""

    def __init__(self, settings: DriftlineSettings, counter: Any | None = None) -> None:
        self._configs = StreamConfigs(settings, client_id="driftline-trainer", counter=counter)
        self._lock = threading.Lock()

    def catch_up(self) -> int:
        """Read the topic to its end; returns how many changes were applied."""
        with self._lock:
            return len(self._configs.catch_up())

    def __call__(self, stream: str) -> StreamConfig | None:
        with self._lock:
            self._configs.refresh(timeout_ms=0)
            # published just before its first drift: read to the end
            return self._configs.current(stream)

    def close(self) -> None:
        """Close the client."""
        self._configs.close()


class Edge:
    """The per-message work of the agent: decode, train, dead-letter what cannot be."""

    def __init__(self, trainer: Trainer, dead_topic: str) -> None:
        self.trainer = trainer
        self.dead_topic = dead_topic

    async def on_message(self, message: Any, send: Callable[..., Any]) -> None:
        """Handle one message of the drift topic; never raises (a raising agent stops
        consuming, and faust would ack the message anyway)."""
        try:
            await self._handle(message, send)
        except Exception:  # noqa: BLE001 - even a letter that cannot be sent stops nothing
            log.exception(
                "a drift event could not be handled nor dead-lettered; going on",
                extra=at(message.topic, message.partition, message.offset),
            )

    async def _handle(self, message: Any, send: Callable[..., Any]) -> None:
        value = message.value if isinstance(message.value, bytes) else b""
        where = at(message.topic, message.partition, message.offset)
        try:
            trigger = decode(value, CATALOGUE["drift"])
        except CodecError as exc:
            log.warning("bad drift event: %s", exc, extra=where)
            await self._dead(message, value, exc.reason, str(exc), send)
            return
        assert isinstance(trigger, DriftDetected | RetrainRequested)  # noqa: S101 - the union
        try:
            result = await in_thread(self.trainer.handle, trigger)
        except UnknownStream as exc:
            log.warning("%s", exc, extra=where)
            await self._dead(message, value, ReasonCode.UNKNOWN_STREAM, str(exc), send, trigger)
            return
        except Exception as exc:  # noqa: BLE001 - dead-lettered with its reason, then go on
            log.exception("training failed for drift event %s", trigger.event_id, extra=where)
            detail = f"the trainer failed on this event ({type(exc).__name__}: {exc})"
            await self._dead(message, value, ReasonCode.HANDLER_ERROR, detail, send, trigger)
            return
        log.info(
            "%s %s on %s: %s %s",
            trigger.event_type,
            trigger.event_id,
            trigger.stream,
            result.outcome,
            result.decision,
            extra=where,
        )

    async def _dead(
        self,
        message: Any,
        value: bytes,
        reason: ReasonCode,
        detail: str,
        send: Callable[..., Any],
        trigger: DriftDetected | RetrainRequested | None = None,
    ) -> None:
        self.trainer.metrics.dead.labels(reason=reason.value).inc()
        letter = dead_letter(
            reason=reason,
            detail=detail,
            service=SERVICE,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=message.key,
            value=value,
            stream=trigger.stream if trigger else None,
            source_event_id=str(trigger.event_id) if trigger else None,
        )
        key = message.topic.encode()  # events.dead is keyed by the source topic
        delivery = await send(self.dead_topic, key, encode(letter), None, None, None)
        await delivery


def build_app(settings: DriftlineSettings, tsettings: TrainerSettings, edge: Edge) -> Any:
    """The faust app: one agent on ``drift``, one event at a time per partition."""
    session = tsettings.session_timeout_s
    app = make_app(
        settings,
        tsettings.group(settings.topic_prefix),
        broker_commit_interval=1.0,
        broker_session_timeout=session,
        broker_heartbeat_interval=min(3.0, session / 3),
        broker_max_poll_interval=tsettings.max_run_s + 60.0,
    )
    source = raw_topic(app, Topics(settings.topic_prefix), "drift")

    @app.agent(source, name="train")
    async def consume(stream: Any) -> None:
        async for event in stream.events():
            await edge.on_message(event.message, app.producer.send)

    return app


def check_topics(settings: DriftlineSettings) -> None:
    """Fail fast, naming the fix, when a topic the trainer needs is missing."""
    topics = Topics(settings.topic_prefix)
    consumer = make_consumer(settings, group_id=None, client_id="driftline-trainer")
    try:
        for suffix in ("drift", "examples.valid", "streams", "models", "events.dead"):
            if not consumer.partitions_for_topic(topics.name(suffix)):
                raise ConfigError(
                    "topics",
                    f"topic {topics.name(suffix)!r} does not exist on {settings.bootstrap}; "
                    "run `driftline topics create`",
                )
    finally:
        consumer.close()


def make_pool(workers: int, nice: int = 0) -> cf.ProcessPoolExecutor:
    """The process pool candidates are fitted in (forkserver: no forked threads or sockets),
    each worker ``nice`` steps below the trainer's priority."""
    context = multiprocessing.get_context("forkserver")
    # the fork server imports scikit-learn once; every worker forked from it starts warm
    context.set_forkserver_preload(["services.trainer.train"])
    return cf.ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=train.init_worker,
        initargs=(os.getpid(), nice),
    )


def stop_pool(pool: cf.ProcessPoolExecutor) -> None:
    """Stop the pool at once: a run cut short resumes when its event is redelivered."""
    processes = dict(getattr(pool, "_processes", None) or {})
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes.values():
        if process.is_alive():
            process.terminate()


def pauser(tsettings: TrainerSettings) -> Callable[[str], None]:
    """The testing hook that stops a run at ``DRIFTLINE_TRAINER_PAUSE_AT`` until killed."""

    def pause(step: str) -> None:
        if step != tsettings.pause_at:
            return
        log.warning("pausing at %r (DRIFTLINE_TRAINER_PAUSE_AT) until killed", step)
        if tsettings.pause_file is not None:
            tsettings.pause_file.write_text(step)
        threading.Event().wait()

    return pause


def run(boot: Startup, tsettings: TrainerSettings) -> int:
    """Run the trainer until SIGTERM/SIGINT; returns the exit code."""
    settings = boot.settings
    topics = Topics(settings.topic_prefix)
    if settings.log_level != "DEBUG":
        for chatty in ("faust", "mode"):
            logging.getLogger(chatty).setLevel(logging.WARNING)
    check_topics(settings)
    # River champions are unpickled during runs: import River now, not inside the first run
    importlib.import_module("river")
    metrics = TrainerMetrics(streams=tsettings.metrics_streams or None)
    configs = Configs(settings, counter=metrics.config_rejects)
    with boot.uninterrupted():  # the registry's migrations, when it is opened in-process
        registry = Registry.open(settings)
    pool = make_pool(tsettings.workers, tsettings.fit_nice)
    try:
        log.info("read %d stream configs", configs.catch_up())
        for _ in range(tsettings.workers):
            pool.submit(train.warm)  # import scikit-learn in every worker before a run
        boot.serve_metrics(metrics.metrics, tsettings.metrics_port, tsettings.metrics_host)
        trainer = Trainer(
            registry=registry,
            configs=configs,
            replay=KafkaReplay(settings, topics.name("examples.valid")),
            pool=pool,
            metrics=metrics,
            pause=pauser(tsettings),
            drift_wait_s=tsettings.drift_wait_s,
            broker_retries=tsettings.broker_retries,
            newer_drift=DriftTail(settings, topics.name("drift"), configs),
        )
        app = build_app(settings, tsettings, Edge(trainer, topics.name("events.dead")))
        log.info(
            "training on %s (group %s, %d workers)",
            topics.name("drift"),
            tsettings.group(settings.topic_prefix),
            tsettings.workers,
        )
        boot.running()
        return run_worker(app, boot.stop, loglevel=settings.log_level)
    finally:
        stop_pool(pool)
        configs.close()
        try:
            registry.close()
        except Exception:  # noqa: BLE001 - closing must not mask the exit status
            log.exception("closing the registry failed")
