"""The model subscriber's loaded versions: one slot per ``(model, alias)`` (or
``(model, "pinned")``), filled by loading a version, swapped copy-on-write, and the
versions refused kept for a retry.

Loading a version (:mod:`services.common.model_loading`) fetches, verifies, checks and
warms it up; the slot then swaps it in by replacing an immutable mapping: readers take no
lock and see either the old model or the new one, never a mix. Any failure keeps what was
loaded, logs, counts and calls ``on_failure``, once per ``(model, version, slot)``. A
refused version is tried again: ``fetch_failed`` every ``retry_interval_s``, any other
reason with a backoff doubling from ``retry_interval_s`` to ``max_retry_interval_s``, and
at once whenever an alias moves to it again (:meth:`ModelSlots.forget_failure`).

The slots belong to one :class:`~services.common.subscriber.ModelSubscriber`: they are
written only by its thread (and :meth:`ModelSlots.replace`), read by any thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from schemas import FeatureSpec, ModelVersionPublished, utcnow
from services.common import model_loading
from services.common.model_loading import LoadedModel, LoadError, LoadFailure, released
from services.common.predictor import Predictor
from services.common.signing import Keyring

log = logging.getLogger(__name__)

PINNED = "pinned"  # the slot name of a pinned version
TRANSIENT = frozenset({"fetch_failed"})  # reasons worth retrying later
CACHED_VERSIONS = 8  # versions kept loaded after they left every slot


def call_safely(callback: Callable[..., None] | None, *args: Any) -> None:
    """Call a user's callback; an exception is logged, never raised."""
    if callback is None:
        return
    try:
        callback(*args)
    except Exception:  # noqa: BLE001 - a user's callback never stops the subscriber
        log.exception("a model subscriber callback raised")


class ModelSlots:
    """The loaded versions of one subscriber, by slot, and the versions it refused.

    Parameters
    ----------
    versions
        ``model -> {version: its published event}``, as read from the topic so far.
    keyring, features, registry_api_url
        What :func:`services.common.model_loading.load` verifies and checks with.
    stats
        The subscriber's counters (``swaps``, ``failures``, ``removals`` are counted here).
    on_swap, on_failure, on_remove, prepare
        As for :class:`~services.common.subscriber.ModelSubscriber`.
    retry_interval_s, max_retry_interval_s
        When a refused version is tried again.
    """

    def __init__(
        self,
        *,
        versions: Callable[[str], Mapping[int, ModelVersionPublished]],
        keyring: Keyring,
        features: Mapping[str, Sequence[FeatureSpec]],
        registry_api_url: str | None,
        stats: dict[str, int],
        on_swap: Callable[[LoadedModel, LoadedModel | None], None] | None,
        on_failure: Callable[[LoadFailure], None] | None,
        on_remove: Callable[[LoadedModel], None] | None,
        prepare: Callable[[LoadedModel], LoadedModel] | None,
        retry_interval_s: float,
        max_retry_interval_s: float,
    ) -> None:
        self.versions = versions
        self.keyring = keyring
        self.features = features
        self.registry_api_url = registry_api_url
        self.stats = stats
        self.on_swap = on_swap
        self.on_failure = on_failure
        self.on_remove = on_remove
        self.prepare = prepare
        self.retry_interval_s = retry_interval_s
        self.max_retry_interval_s = max_retry_interval_s
        # Read by any thread without a lock: replaced whole, never mutated.
        self.snapshot: Mapping[tuple[str, str], LoadedModel] = MappingProxyType({})
        self._swap_lock = threading.Lock()  # writers only (the subscriber, replace())
        self._history_lock = threading.Lock()
        self._history: deque[LoadedModel | LoadFailure] = deque(maxlen=1000)
        # The subscriber thread's state only.
        self.failed: dict[tuple[str, int], LoadFailure] = {}
        self.attempts: dict[tuple[str, int], tuple[int, float]] = {}  # tries, next try at
        self._reported: set[tuple[str, int, str]] = set()
        self._cache: OrderedDict[tuple[str, int], tuple[Predictor, float]] = OrderedDict()
        self.retry_at = 0.0

    def history(self) -> list[LoadedModel | LoadFailure]:
        """Loads and refusals, oldest first (the newest 1,000)."""
        with self._history_lock:
            return list(self._history)

    def _remember(self, entry: LoadedModel | LoadFailure) -> None:
        with self._history_lock:
            self._history.append(entry)

    def settle(self, model: str, slot: str, version: int | None) -> None:
        """Make ``slot`` of ``model`` hold ``version`` (None: nothing), loading it unless
        it was refused and its retry is not due."""
        alias = None if slot == PINNED else slot
        current = self.snapshot.get((model, slot))
        if version is None:
            if current is not None:
                self._swap(model, slot, None)
                self.stats["removals"] += 1
                log.info("%s@%s was removed: v%d unloaded", model, slot, current.version)
                call_safely(self.on_remove, current)
            return
        if current is not None and current.version == version:
            return
        meta = self.versions(model).get(version)
        if meta is None:
            return  # the version's event has not arrived yet (it will)
        failed = self.failed.get((model, version))
        if failed is not None:
            self._report(failed, alias)
            return
        try:
            predictor, load_ms = self._load(meta)
        except LoadError as exc:
            failure = LoadFailure(model, version, alias, exc.reason, exc.detail)
            self.failed[(model, version)] = failure
            self._schedule_retry(model, version, exc.reason)
            self._report(failure, alias)
            return
        if self.attempts.pop((model, version), None) is not None:  # refused before
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
        self._remember(record)
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
        call_safely(self.on_swap, loaded, current)

    def _swap(self, model: str, slot: str, loaded: LoadedModel | None) -> None:
        """Copy-on-write: readers hold the old mapping or the new one, both whole."""
        with self._swap_lock:
            new = dict(self.snapshot)
            if loaded is None:
                new.pop((model, slot), None)
            else:
                new[(model, slot)] = loaded
            self.snapshot = MappingProxyType(new)

    def replace(self, slot: str, loaded: LoadedModel) -> bool:
        """Serve ``loaded`` in ``slot`` instead of what it holds, only while that is the
        same version; True when it was swapped in. Any thread."""
        with self._swap_lock:
            current = self.snapshot.get((loaded.model, slot))
            if current is None or current.version != loaded.version:
                return False
            new = dict(self.snapshot)
            new[(loaded.model, slot)] = loaded
            self.snapshot = MappingProxyType(new)
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
        self._remember(failure)
        log.error(
            "refused %s v%d for %s: %s (%s); keeping %s",
            failure.model,
            failure.version,
            slot,
            failure.reason,
            failure.detail,
            _describe(self.snapshot.get((failure.model, slot))),
            extra={"model": failure.model, "version": failure.version, "reason": failure.reason},
        )
        call_safely(self.on_failure, failure)

    def _schedule_retry(self, model: str, version: int, reason: str) -> None:
        """When to try a refused version again: ``retry_interval_s`` for a fetch, else a
        delay doubling up to ``max_retry_interval_s``."""
        tries = self.attempts.get((model, version), (0, 0.0))[0] + 1
        if reason in TRANSIENT:
            delay = self.retry_interval_s
        else:
            delay = min(self.retry_interval_s * 2 ** (tries - 1), self.max_retry_interval_s)
        self.attempts[(model, version)] = (tries, time.monotonic() + delay)

    def forget_failure(self, model: str, version: int) -> None:
        """Try ``version`` afresh (an alias moved to it), and report a new failure again."""
        if self.failed.pop((model, version), None) is not None:
            self.attempts.pop((model, version), None)
            self._reported = {r for r in self._reported if r[:2] != (model, version)}

    def due_retries(self) -> set[str]:
        """Forget every refused version whose delay has passed; returns their models, to
        settle again."""
        now = time.monotonic()
        self.retry_at = now + min(1.0, self.retry_interval_s)
        due = {k for k in self.failed if self.attempts.get(k, (0, 0.0))[1] <= now}
        for key in due:
            del self.failed[key]
        return {model for model, _ in due}

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
            registry_api_url=self.registry_api_url,
        )
        load_ms = (time.perf_counter() - started) * 1000
        self._cache[(meta.model, meta.version)] = (predictor, load_ms)
        while len(self._cache) > CACHED_VERSIONS:
            self._cache.popitem(last=False)
        return predictor, load_ms


def _describe(loaded: LoadedModel | None) -> str:
    return f"v{loaded.version}" if loaded is not None else "nothing loaded"
