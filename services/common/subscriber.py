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

Loading a version (:mod:`services.common.model_loading`): fetch the artifact (its
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
from collections import OrderedDict, deque
from collections.abc import Callable, Collection, Mapping, Sequence
from types import MappingProxyType, TracebackType
from typing import Any

from schemas import AliasMoved, FeatureSpec, ModelVersionPublished, ReasonCode, Topics, utcnow
from schemas.topics import CATALOGUE
from services.common import model_loading
from services.common.backoff import Backoff
from services.common.compacted import Refusal, read_value
from services.common.dead_letters import DeadLetters
from services.common.errors import ConfigError
from services.common.kafka_client import assign_all, make_consumer
from services.common.logs import Throttle, at
from services.common.model_loading import (
    LoadedModel,
    LoadError,
    LoadFailure,
    ReleasedPredictor,
    compatibility_problems,
    released,
    warmup_row,
)
from services.common.predictor import Predictor
from services.common.settings import DriftlineSettings
from services.common.signing import Keyring, SignatureError

log = logging.getLogger(__name__)

PINNED = "pinned"  # the slot name of a pinned version in :meth:`ModelSubscriber.loaded`
TRANSIENT = frozenset({"fetch_failed"})  # reasons worth retrying later
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
        in a :class:`~services.common.online_follower.Followers` follower). The previous
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
        self.features = {m: tuple(f) for m, f in (features or {}).items()}
        self.on_swap = on_swap
        self.on_failure = on_failure
        self.on_remove = on_remove
        self.keyring = keyring if keyring is not None else Keyring.from_settings(settings)
        self.client_id = client_id
        self.retry_interval_s = retry_interval_s
        self.max_retry_interval_s = max(max_retry_interval_s, retry_interval_s)
        self.on_refusal = on_refusal
        # Read by any thread without a lock: replaced whole, never mutated.
        self._snapshot: Mapping[tuple[str, str], LoadedModel] = MappingProxyType({})
        self._swap_lock = threading.Lock()  # writers only (the subscriber, replace())
        # Written by the subscriber thread under _lock; read (copied) under it.
        self._lock = threading.Lock()
        self._versions: dict[str, dict[int, ModelVersionPublished]] = {}
        self._alias_table: dict[str, dict[str, int]] = {}
        self._history: deque[LoadedModel | LoadFailure] = deque(maxlen=1000)
        self._changed = threading.Condition()
        self._caught_up = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._consumer: Any = None
        self._start_end: dict[Any, int] = {}
        # Subscriber-thread state only.
        self._failed: dict[tuple[str, int], LoadFailure] = {}
        self._attempts: dict[tuple[str, int], tuple[int, float]] = {}  # tries, next try at
        self._reported: set[tuple[str, int, str]] = set()
        self._cache: OrderedDict[tuple[str, int], tuple[Predictor, float]] = OrderedDict()
        self._retry_at = 0.0
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
        self.prepare = prepare
        self._applied: dict[str, OrderedDict[str, None]] = {}  # key -> event ids applied
        self._throttle = Throttle(log, per_s=5)
        self.error: BaseException | None = None

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
        snapshot = self._snapshot  # one read: a consistent view
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
        return self._snapshot.get((model, PINNED))

    @property
    def current(self) -> LoadedModel | None:
        """With exactly one model followed (or loaded): its primary alias' version."""
        if self.models is not None and len(self.models) == 1:
            (name,) = self.models
            return self.get(name, self.primary)
        names = {m for m, _ in self._snapshot}
        if len(names) == 1:
            return self.get(next(iter(names)), self.primary)
        return None

    def loaded(self) -> dict[tuple[str, str], LoadedModel]:
        """Everything loaded: ``{(model, alias or "pinned"): LoadedModel}``."""
        return dict(self._snapshot)

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
        with self._lock:
            return list(self._history)

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
                if self._caught_up.is_set() and self._failed and time.monotonic() > self._retry_at:
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
            self._forget_failure(event.model, event.to_version)  # moved to it: try it again
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
        self._call(self.on_refusal, kind)
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
                    self._settle(model, slot, version)
                except Exception:  # noqa: BLE001 - one bad slot never stops the others
                    log.exception("loading %s %s failed unexpectedly", model, slot)

    def _settle(self, model: str, slot: str, version: int | None) -> None:
        alias = None if slot == PINNED else slot
        current = self._snapshot.get((model, slot))
        if version is None:
            if current is not None:
                self._swap(model, slot, None)
                self.stats["removals"] += 1
                log.info("%s@%s was removed: v%d unloaded", model, slot, current.version)
                self._call(self.on_remove, current)
            return
        if current is not None and current.version == version:
            return
        meta = self.versions(model).get(version)
        if meta is None:
            return  # the version's event has not arrived yet (it will)
        failed = self._failed.get((model, version))
        if failed is not None:
            self._report(failed, alias)
            return
        try:
            predictor, load_ms = self._load(meta)
        except LoadError as exc:
            failure = LoadFailure(model, version, alias, exc.reason, exc.detail)
            self._failed[(model, version)] = failure
            self._schedule_retry(model, version, exc.reason)
            self._report(failure, alias)
            return
        if self._attempts.pop((model, version), None) is not None:  # refused before
            self._reported = {r for r in self._reported if r[:2] != (model, version)}
        loaded = LoadedModel(
            model=model,
            version=version,
            alias=alias,
            predictor=predictor,
            meta=meta,
            loaded_at=utcnow(),
            load_ms=load_ms,
        )
        record = released(loaded)
        if self.prepare is not None:
            try:
                loaded = self.prepare(loaded)
            except Exception:  # noqa: BLE001 - serve the version as loaded
                log.exception("preparing %s v%d failed; serving it as loaded", model, version)
        self._swap(model, slot, loaded)
        self.stats["swaps"] += 1
        with self._lock:
            self._history.append(record)
        log.info(
            "%s %s -> v%d (%s %s, %.1f ms)",
            model,
            slot,
            version,
            meta.kind,
            meta.algorithm,
            load_ms,
            extra={"model": model, "slot": slot, "version": version},
        )
        self._call(self.on_swap, loaded, current)

    def _swap(self, model: str, slot: str, loaded: LoadedModel | None) -> None:
        """Copy-on-write: readers hold the old mapping or the new one, both whole."""
        with self._swap_lock:
            new = dict(self._snapshot)
            if loaded is None:
                new.pop((model, slot), None)
            else:
                new[(model, slot)] = loaded
            self._snapshot = MappingProxyType(new)

    def replace(self, slot: str, loaded: LoadedModel) -> bool:
        """Serve ``loaded`` in ``slot`` instead of what it holds, only while that is the
        same version (a follower of the snapshot loaded there, once caught up); True when
        it was swapped in. Any thread."""
        with self._swap_lock:
            current = self._snapshot.get((loaded.model, slot))
            if current is None or current.version != loaded.version:
                return False
            new = dict(self._snapshot)
            new[(loaded.model, slot)] = loaded
            self._snapshot = MappingProxyType(new)
            return True

    def _report(self, failure: LoadFailure, alias: str | None) -> None:
        """Report a failure once per (model, version, slot)."""
        slot = alias or PINNED
        key = (failure.model, failure.version, slot)
        if key in self._reported:
            return
        self._reported.add(key)
        if failure.alias != alias:
            failure = LoadFailure(
                failure.model, failure.version, alias, failure.reason, failure.detail
            )
        self.stats["failures"] += 1
        with self._lock:
            self._history.append(failure)
        log.error(
            "refused %s v%d for %s: %s (%s); keeping %s",
            failure.model,
            failure.version,
            slot,
            failure.reason,
            failure.detail,
            _describe(self._snapshot.get((failure.model, slot))),
            extra={"model": failure.model, "version": failure.version, "reason": failure.reason},
        )
        self._call(self.on_failure, failure)

    def _schedule_retry(self, model: str, version: int, reason: str) -> None:
        """When to try a refused version again: ``retry_interval_s`` for a fetch, else a
        delay doubling up to ``max_retry_interval_s``."""
        tries = self._attempts.get((model, version), (0, 0.0))[0] + 1
        if reason in TRANSIENT:
            delay = self.retry_interval_s
        else:
            delay = min(self.retry_interval_s * 2 ** (tries - 1), self.max_retry_interval_s)
        self._attempts[(model, version)] = (tries, time.monotonic() + delay)

    def _forget_failure(self, model: str, version: int) -> None:
        """Try ``version`` afresh (an alias moved to it), and report a new failure again."""
        if self._failed.pop((model, version), None) is not None:
            self._attempts.pop((model, version), None)
            self._reported = {r for r in self._reported if r[:2] != (model, version)}

    def _retry_failed(self) -> None:
        """Try again every refused version whose delay has passed."""
        now = time.monotonic()
        self._retry_at = now + min(1.0, self.retry_interval_s)
        due = {k for k in self._failed if self._attempts.get(k, (0, 0.0))[1] <= now}
        if not due:
            return
        for key in due:
            del self._failed[key]
        self._reconcile({model for model, _ in due})

    def _call(self, callback: Callable[..., None] | None, *args: Any) -> None:
        if callback is None:
            return
        try:
            callback(*args)
        except Exception:  # noqa: BLE001 - a user's callback never stops the subscriber
            log.exception("a model subscriber callback raised")

    def _load(self, meta: ModelVersionPublished) -> tuple[Predictor, float]:
        """Load one version (:func:`services.common.model_loading.load`), or take it from
        the cache of the last versions loaded; raises LoadError."""
        started = time.perf_counter()
        cached = self._cache.get((meta.model, meta.version))
        if cached is not None:
            self._cache.move_to_end((meta.model, meta.version))
            return cached[0], (time.perf_counter() - started) * 1000
        predictor = model_loading.load(
            meta,
            keyring=self.keyring,
            declared=self.features.get(meta.model),
            registry_api_url=self.settings.registry_api_url,
        )
        load_ms = (time.perf_counter() - started) * 1000
        self._cache[(meta.model, meta.version)] = (predictor, load_ms)
        while len(self._cache) > 8:
            self._cache.popitem(last=False)
        return predictor, load_ms


def _describe(loaded: LoadedModel | None) -> str:
    return f"v{loaded.version}" if loaded is not None else "nothing loaded"


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
