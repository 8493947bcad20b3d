"""The SDK's model subscriber: follow a model's aliases (or pin a version) from the
compacted ``models`` topic and always hold a verified, warmed-up predictor.

Another team's service needs a few lines::

    settings = DriftlineSettings.load()
    with ModelSubscriber(settings, models=["sea"]) as models:
        models.wait_until(lambda s: s.current is not None, timeout_s=30)
        champion = models.get("sea")          # LoadedModel | None, no lock taken
        champion.predictor.predict_one({"x1": 1.0, "x2": 2.0, "x3": 3.0})

How it works: a plain thread (kafka-python, no consumer group, no event loop) reads the
``models`` topic from its start, so a restart rebuilds every version and alias. Until it
has read up to the end offset it saw at start, it only records events; then it loads the
final version of each followed alias once. Later events load as they come.

Every event is verified before it is recorded: it must carry the registry's Ed25519
signature (:meth:`~services.common.signing.Keyring.verify_event`), so nobody who can write
to the topic can move an alias or announce a version.

Loading a version (:mod:`services.common.model_loading`, into the slots of
:mod:`services.common.model_slots`): fetch the artifact (its
``file://`` URI when readable here, else its ``url``, else
``{DRIFTLINE_REGISTRY_HTTP_URL}/artifacts/{sha256}``), verify its sha256 and that its
signature names this model and version before anything is unpickled
(:func:`services.common.artifacts.load_version`), check that every feature the model uses
is declared by the caller with the same type, warm it up with one prediction, then swap it
in by replacing an immutable mapping: readers take no lock and see either the old model or
the new one, never a mix. Any failure keeps what was loaded, logs, counts and calls
``on_failure``.

Reason codes of :class:`LoadFailure`: ``missing_signature``, ``unknown_key_id``,
``bad_signature`` (also: bytes signed as another version), ``sha256_mismatch``,
``incompatible_spec``, ``fetch_failed``, ``load_failed``, ``warmup_failed``. A refused
version is tried again: ``fetch_failed`` every ``retry_interval_s``, any other reason with
a backoff doubling from ``retry_interval_s`` to ``max_retry_interval_s`` (an artifact can
be repaired), and at once whenever an alias moves to it again.

**Unusable records.** Only the registry writes ``models``, but anyone with write access
can, so a record is refused, counted by kind in :attr:`ModelSubscriber.refused` and logged
(at most a few lines a second) when it is: not UTF-8 or not JSON (``unparseable_event``),
of an unknown ``event_type`` (``unknown_event_type``), of a newer schema
(``unsupported_schema_version``), otherwise against the contract (``contract_violation``),
under a key that is not its own (``key_mismatch``: ``sea@champion`` must hold the
``champion`` move of ``sea``), a tombstone (``tombstone``: the registry removes an
alias with an alias-moved event to no version and never deletes a key), without the
registry's signature (``missing_signature``), signed by a key not known here
(``unknown_key_id``) or with a signature that does not match (``bad_signature``: a
forged or altered event). Each kind is also passed to ``on_refusal``. A refused record
changes nothing: the last valid version and alias stay. An event whose ``event_id`` was
already applied under its key (a relay's redelivery, the registry re-asserting a value)
is skipped, so an older value re-sent late never moves an alias back.

The subscriber is a library inside other teams' processes, so it writes no dead letters
of its own: the registry, which follows ``models`` as its writer, letters each unusable
record once and re-publishes the key's valid value (a letter per replica would multiply
them). A process that wants letters anyway passes ``dead_letters``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping, Sequence
from types import TracebackType
from typing import Any, Generic, TypeVar, cast

from schemas import AliasMoved, FeatureSpec, ModelVersionPublished, ReasonCode, Topics
from schemas.topics import CATALOGUE
from services.common.backoff import Backoff
from services.common.compacted import Refusal, read_value
from services.common.dead_letters import DeadLetters
from services.common.errors import ConfigError
from services.common.kafka_client import assign_all, control_fetch, make_consumer
from services.common.logs import Throttle, at
from services.common.model_loading import (
    LoadedModel,
    LoadFailure,
    ReleasedPredictor,
    compatibility_problems,
    warmup_row,
)
from services.common.model_slots import PINNED, ModelSlots, call_safely
from services.common.settings import DriftlineSettings
from services.common.signing import Keyring, SignatureError

log = logging.getLogger(__name__)
T = TypeVar("T")

REFUSALS = (  # kinds of unusable records on the models topic (see the module docstring)
    "unparseable_event",
    "unknown_event_type",
    "unsupported_schema_version",
    "contract_violation",
    "key_mismatch",
    "tombstone",
    "missing_signature",
    "unknown_key_id",
    "bad_signature",
)
APPLIED_IDS_PER_KEY = 64  # event ids remembered per key, to skip redeliveries


class _SlotsAttribute(Generic[T]):
    """An attribute of :class:`ModelSubscriber` kept by its :class:`ModelSlots`."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, owner: ModelSubscriber | None, cls: type | None = None) -> T:
        if owner is None:
            raise AttributeError(self.name)
        return cast(T, getattr(owner._slots, self.name))

    def __set__(self, owner: ModelSubscriber, value: T) -> None:
        setattr(owner._slots, self.name, value)


class ModelSubscriber:
    """Follows model versions and aliases on the ``models`` topic; holds them loaded.

    Parameters
    ----------
    settings
        Broker, topic prefix, keys and ``registry_http_url``.
    models
        Models to follow (None: every model on the topic).
    aliases
        Aliases to follow, the primary first (``("champion", "challenger")`` to shadow).
    pins
        ``model -> version``: load exactly that version for the model, whatever its aliases.
    features
        Declared features per model; a version using a feature not declared, or with
        another type, is refused (``incompatible_spec``). None or a missing model: no check.
    on_swap, on_failure, on_remove
        Called from the subscriber's thread: ``on_swap(new, old)`` after a swap,
        ``on_failure(failure)`` after a refused load, ``on_remove(old)`` when an alias
        followed was removed. An exception in a callback is logged, never raised.
    keyring
        Verification keys (default: ``Keyring.from_settings(settings)``: the public keys
        of ``DRIFTLINE_VERIFY_KEYS``).
    client_id
        The Kafka client id.
    retry_interval_s
        How often a version that could not be fetched is tried again, and the first
        delay before a refused version is tried again.
    max_retry_interval_s
        The longest delay between two tries of a refused version.
    on_refusal
        Called from the subscriber's thread with the kind of every unusable record
        (one of :data:`REFUSALS`), for metrics.
    dead_letters
        Where to letter unusable records (default: nowhere, they are counted and logged;
        the registry letters them).
    prepare
        Called from the subscriber's thread with each verified, warmed-up version before
        it is swapped in; returns what to serve instead (serving wraps an online snapshot
        in a :class:`~services.common.online_followers.Followers` follower). The previous
        model serves until it returns; an exception keeps the version as loaded.

    Examples
    --------
    >>> s = ModelSubscriber(DriftlineSettings.load(env={}), models=["sea"])
    >>> s.get("sea") is None, s.loaded(), s.caught_up()
    (True, {}, False)
    """

    def __init__(
        self,
        settings: DriftlineSettings,
        *,
        models: Collection[str] | None = None,
        aliases: Sequence[str] = ("champion",),
        pins: Mapping[str, int] | None = None,
        features: Mapping[str, Sequence[FeatureSpec]] | None = None,
        on_swap: Callable[[LoadedModel, LoadedModel | None], None] | None = None,
        on_failure: Callable[[LoadFailure], None] | None = None,
        keyring: Keyring | None = None,
        client_id: str = "driftline-subscriber",
        on_remove: Callable[[LoadedModel], None] | None = None,
        retry_interval_s: float = 5.0,
        dead_letters: DeadLetters | None = None,
        prepare: Callable[[LoadedModel], LoadedModel] | None = None,
        max_retry_interval_s: float = 300.0,
        on_refusal: Callable[[str], None] | None = None,
    ) -> None:
        if not aliases and not pins:
            raise ValueError("follow at least one alias or pin one version")
        self.settings = settings
        self.topic = Topics(settings.topic_prefix).name("models")
        self.models = frozenset(models) if models is not None else None
        self.followed = tuple(aliases)
        self.pins = dict(pins or {})
        self.client_id = client_id
        self.retry_interval_s = retry_interval_s
        self.max_retry_interval_s = max(max_retry_interval_s, retry_interval_s)
        self.on_refusal = on_refusal
        # Written by the subscriber thread under _lock; read (copied) under it.
        self._lock = threading.Lock()
        self._versions: dict[str, dict[int, ModelVersionPublished]] = {}
        self._alias_table: dict[str, dict[str, int]] = {}
        self._changed = threading.Condition()
        self._caught_up = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._consumer: Any = None
        self._start_end: dict[Any, int] = {}
        self.stats = {
            "events": 0,
            "bad_events": 0,
            "duplicates": 0,
            "swaps": 0,
            "failures": 0,
            "removals": 0,
        }
        self.refused: dict[str, int] = dict.fromkeys(REFUSALS, 0)  # unusable records by kind
        self.dead_letters = dead_letters
        # The loaded versions; the callbacks, keys and features are theirs (see below).
        self._slots = ModelSlots(
            versions=self.versions,
            keyring=keyring if keyring is not None else Keyring.from_settings(settings),
            features={m: tuple(f) for m, f in (features or {}).items()},
            registry_api_url=settings.registry_api_url,
            stats=self.stats,
            on_swap=on_swap,
            on_failure=on_failure,
            on_remove=on_remove,
            prepare=prepare,
            retry_interval_s=self.retry_interval_s,
            max_retry_interval_s=self.max_retry_interval_s,
        )
        self._applied: dict[str, OrderedDict[str, None]] = {}  # key -> event ids applied
        self._throttle = Throttle(log, per_s=5)
        self.error: BaseException | None = None

    # The slots load with these; set here, they apply to the next load.
    keyring = _SlotsAttribute[Keyring]("keyring")
    features = _SlotsAttribute[Mapping[str, Sequence[FeatureSpec]]]("features")
    on_swap = _SlotsAttribute[Callable[[LoadedModel, LoadedModel | None], None] | None]("on_swap")
    on_failure = _SlotsAttribute[Callable[[LoadFailure], None] | None]("on_failure")
    on_remove = _SlotsAttribute[Callable[[LoadedModel], None] | None]("on_remove")
    prepare = _SlotsAttribute[Callable[[LoadedModel], LoadedModel] | None]("prepare")

    # -- life cycle -----------------------------------------------------------------

    def start(self) -> ModelSubscriber:
        """Connect and start following in a daemon thread; returns ``self``.

        Raises :class:`~services.common.errors.BrokerError` here, in the caller, when the
        broker or the ``models`` topic is missing, and
        :class:`~services.common.errors.ConfigError` without a public key to verify with.
        """
        if self._thread is not None:
            raise RuntimeError("this subscriber was started already")
        if not self.keyring.public:
            raise ConfigError(
                "DRIFTLINE_VERIFY_KEYS",
                "is not set: the registry's public key is needed to verify model events",
            )
        consumer = make_consumer(
            self.settings,
            group_id=None,
            client_id=self.client_id,
            max_poll_records=500,
            **control_fetch(self.settings),
        )
        try:
            tps = assign_all(consumer, self.topic)
            self._start_end = dict(consumer.end_offsets(tps))
        except BaseException:
            consumer.close()
            raise
        self._consumer = consumer
        self._thread = threading.Thread(
            target=self._run, name=f"{self.client_id}-models", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop following and close the consumer (the loaded models stay readable)."""
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout_s)
        if self._thread is not None and self._thread.is_alive():
            log.warning("the model subscriber did not stop within %.1fs", timeout_s)

    def __enter__(self) -> ModelSubscriber:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """True while the subscriber thread runs."""
        return self._thread is not None and self._thread.is_alive()

    # -- reads (any thread) ---------------------------------------------------------

    def get(self, model: str, alias: str = "champion") -> LoadedModel | None:
        """The loaded version of ``model`` for ``alias``. No lock is taken.

        A pinned model answers with its pinned version for ``champion`` and for the
        primary (first) alias followed, and None for the others.
        """
        snapshot = self._slots.snapshot  # one read: a consistent view
        found = snapshot.get((model, alias))
        if found is None and alias in (self.primary, "champion"):
            found = snapshot.get((model, PINNED))
        return found

    @property
    def primary(self) -> str:
        """The first alias followed (``champion`` by default)."""
        return self.followed[0] if self.followed else "champion"

    def pinned(self, model: str) -> LoadedModel | None:
        """The pinned version of ``model``, once loaded."""
        return self._slots.snapshot.get((model, PINNED))

    @property
    def current(self) -> LoadedModel | None:
        """With exactly one model followed (or loaded): its primary alias' version."""
        if self.models is not None and len(self.models) == 1:
            (name,) = self.models
            return self.get(name, self.primary)
        names = {m for m, _ in self._slots.snapshot}
        if len(names) == 1:
            return self.get(next(iter(names)), self.primary)
        return None

    def loaded(self) -> dict[tuple[str, str], LoadedModel]:
        """Everything loaded: ``{(model, alias or "pinned"): LoadedModel}``."""
        return dict(self._slots.snapshot)

    def versions(self, model: str) -> dict[int, ModelVersionPublished]:
        """Every version of ``model`` seen on the topic."""
        with self._lock:
            return dict(self._versions.get(model, {}))

    def aliases(self, model: str) -> dict[str, int]:
        """Where the aliases of ``model`` point, as the topic says (every alias)."""
        with self._lock:
            return dict(self._alias_table.get(model, {}))

    def history(self) -> list[LoadedModel | LoadFailure]:
        """Loads and refusals, oldest first (the newest 1,000). Entries keep each load's
        metadata but no model (their predictor is a :class:`ReleasedPredictor`)."""
        return self._slots.history()

    def caught_up(self) -> bool:
        """True once the topic was read up to the end offset seen at start and the final
        state of every followed alias was loaded (or refused)."""
        return self._caught_up.is_set()

    def wait_until(self, predicate: Callable[[ModelSubscriber], bool], timeout_s: float) -> bool:
        """Block until ``predicate(self)`` holds (re-checked after every change) or
        ``timeout_s`` passes; returns whether it holds."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(min(remaining, 0.5))
        return True

    # -- the thread -----------------------------------------------------------------

    def _run(self) -> None:
        consumer = self._consumer
        backoff = Backoff(max_s=10.0)
        try:
            while not self._stop.is_set():
                try:
                    batches = consumer.poll(timeout_ms=200)
                except Exception as exc:  # noqa: BLE001 - kafka-python retries; keep going
                    delay = backoff.failed()
                    if backoff.should_log():
                        log.warning(
                            "polling %s failed (%d in a row): %s", self.topic, backoff.failures, exc
                        )
                    self._stop.wait(delay)
                    continue
                backoff.succeeded()
                self._process([r for records in batches.values() for r in records])
                if not self._caught_up.is_set() and all(
                    consumer.position(tp) >= end for tp, end in self._start_end.items()
                ):
                    self._mark_caught_up()
                slots = self._slots
                if self._caught_up.is_set() and slots.failed and time.monotonic() > slots.retry_at:
                    self._retry_failed()
                self._notify()
        except BaseException as exc:  # pragma: no cover - logged for the owner to see
            self.error = exc
            log.exception("the model subscriber stopped on an error")
        finally:
            try:
                consumer.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                log.debug("closing the subscriber's consumer failed", exc_info=True)
            self._notify()

    def _process(self, records: Sequence[Any]) -> None:
        """Record a batch of the topic's records; once caught up, load what changed."""
        touched: set[str] = set()
        for record in records:
            touched |= self._apply(record)
        if touched and self._caught_up.is_set():
            self._reconcile(touched)

    def _mark_caught_up(self) -> None:
        """The topic was read to its start-time end: load the final state of each alias."""
        log.info("models topic read to its end: %d model(s), loading", len(self._models_seen()))
        self._reconcile(self._models_seen())
        self._caught_up.set()  # after the loads: caught up means "holding the final state"

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def _models_seen(self) -> set[str]:
        with self._lock:
            return set(self._versions) | set(self._alias_table) | set(self.pins)

    def _wanted(self, model: str) -> bool:
        return self.models is None or model in self.models or model in self.pins

    def _apply(self, record: Any) -> set[str]:
        """Record one event of the topic; returns the model it touched (if followed)."""
        self.stats["events"] += 1
        key = record.key.decode(errors="replace") if record.key is not None else None
        if record.value is None:
            self._refuse(record, "tombstone", f"a tombstone under {key!r}")
            return set()
        event = read_value(CATALOGUE["models"], record.key, record.value)
        if isinstance(event, Refusal):
            kind = "unparseable_event" if event.kind == "unparseable" else event.kind
            self._refuse(record, kind, event.detail, event.reason)
            return set()
        assert isinstance(event, ModelVersionPublished | AliasMoved)  # noqa: S101 - the union
        if not self._wanted(event.model):
            return set()
        try:
            self.keyring.verify_event(record.value)
        except SignatureError as exc:
            self._refuse(record, exc.reason, str(exc))
            return set()
        applied = self._applied.setdefault(event.key, OrderedDict())
        if str(event.event_id) in applied:
            self.stats["duplicates"] += 1  # a redelivery or a re-assertion: already applied
            return set()
        applied[str(event.event_id)] = None
        while len(applied) > APPLIED_IDS_PER_KEY:
            applied.popitem(last=False)
        with self._lock:
            if isinstance(event, ModelVersionPublished):
                self._versions.setdefault(event.model, {})[event.version] = event
                return {event.model}
            table = self._alias_table.setdefault(event.model, {})
            if event.to_version is None:
                table.pop(event.alias, None)
            else:
                table[event.alias] = event.to_version
        if event.to_version is not None:
            self._slots.forget_failure(event.model, event.to_version)  # moved to it: try it again
        return {event.model}

    def _refuse(
        self,
        record: Any,
        kind: str,
        detail: str,
        reason: ReasonCode = ReasonCode.CONTRACT_VIOLATION,
    ) -> None:
        """Count and log an unusable record (a letter too, with ``dead_letters``); the
        versions and aliases known stay as they were."""
        self.stats["bad_events"] += 1
        self.refused[kind] = self.refused.get(kind, 0) + 1
        call_safely(self.on_refusal, kind)
        self._throttle.log(
            logging.ERROR,
            "skipping an unusable models record (%s): %s",
            kind,
            detail,
            extra=at(record.topic, record.partition, record.offset, reason=kind),
        )
        if self.dead_letters is not None:
            try:
                self.dead_letters.send(record, reason, f"{kind}: {detail}", what="models record")
            except Exception:  # noqa: BLE001 - a letter that cannot be sent is logged only
                log.debug("cannot dead-letter a models record", exc_info=True)

    # -- loading --------------------------------------------------------------------

    def _targets(self, model: str) -> dict[str, int | None]:
        """Slot -> the version it should hold (None: nothing)."""
        if model in self.pins:
            return {PINNED: self.pins[model]}
        with self._lock:
            table = dict(self._alias_table.get(model, {}))
        return {alias: table.get(alias) for alias in self.followed}

    def _reconcile(self, models: set[str]) -> None:
        for model in sorted(models):
            if not self._wanted(model):
                continue
            for slot, version in self._targets(model).items():
                try:
                    self._slots.settle(model, slot, version)
                except Exception:  # noqa: BLE001 - one bad slot never stops the others
                    log.exception("loading %s %s failed unexpectedly", model, slot)

    def replace(self, slot: str, loaded: LoadedModel) -> bool:
        """Serve ``loaded`` in ``slot`` instead of what it holds, only while that is the
        same version (a follower of the snapshot loaded there, once caught up); True when
        it was swapped in. Any thread."""
        return self._slots.replace(slot, loaded)

    def _retry_failed(self) -> None:
        """Try again every refused version whose delay has passed."""
        due = self._slots.due_retries()
        if due:
            self._reconcile(due)


__all__ = [
    "PINNED",
    "REFUSALS",
    "ReleasedPredictor",
    "LoadFailure",
    "LoadedModel",
    "ModelSubscriber",
    "compatibility_problems",
    "warmup_row",
]
