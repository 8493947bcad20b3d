"""The online snapshots a subscriber loads, kept learning: :class:`Followers`, what a
service plugs into its :class:`~services.common.subscriber.ModelSubscriber`
(``prepare=followers.prepare``). Each followed online snapshot is caught up to its
partition's end before it is swapped in (the previous model answers meanwhile), then
keeps learning through an :class:`~services.common.online_follower.OnlineFollower`; a
newer snapshot of the same learner state becomes the running follower's base (a rebase),
any other replaces it the same way (a resync). See :mod:`services.common.online_follower`
for what a follower costs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace

from schemas import LabelledExample
from services.common.online_follow import FollowPoint
from services.common.online_follower import FollowMetrics, InFlight, OnlineFollower
from services.common.settings import DriftlineSettings
from services.common.subscriber import LoadedModel

log = logging.getLogger(__name__)

__all__ = ["Followers"]


class _Superseded(Exception):
    """A newer snapshot of the slot started catching up: this one gives up."""


class Followers:
    """Online snapshots loaded by a subscriber, kept learning: ``prepare`` for
    :class:`~services.common.subscriber.ModelSubscriber`.

    One follower per learner state, shared by the aliases and versions that hold it: a
    newer snapshot of the state a follower already learns (same learner and config, an
    offset it has passed with the same example count) is taken as its new base without
    loading or catching up anything (:meth:`OnlineFollower.rebase`), so a replica learns
    each example twice (once per copy) however often the learner publishes. Any other
    snapshot starts a follower of its own, caught up before it answers; a slot's
    previous follower stops learning once no slot uses it (it answers until the
    subscriber swaps it out), and a catch-up is abandoned when a newer snapshot of its
    slot starts one.
    """

    def __init__(
        self,
        settings: DriftlineSettings,
        *,
        metrics: FollowMetrics | None = None,
        client_id: str = "driftline-follower",
        catch_up_s: float = 60.0,
        threaded: bool = True,
        in_flight: InFlight | None = None,
    ) -> None:
        self.settings = settings
        self.threaded = threaded
        self.metrics = metrics
        self.client_id = client_id
        self.catch_up_s = catch_up_s
        self.in_flight = in_flight
        self.replace: Callable[[str, LoadedModel], bool] | None = None
        """The subscriber's ``replace`` (set once it exists): lets a first load answer as
        a snapshot while its follower catches up."""
        self._lock = threading.Lock()
        self._followers: dict[tuple[str, int], OnlineFollower] = {}
        self._slots: dict[tuple[str, str], tuple[str, int]] = {}
        self._catching: dict[tuple[str, str], OnlineFollower] = {}
        self._background = 0  # catch-ups in their own thread, not finished
        self._wanted: dict[tuple[str, str], LoadedModel] = {}  # newer, for a catch-up
        self.rebases = 0
        """Snapshots taken as a running follower's new base (nothing caught up)."""

    def prepare(self, loaded: LoadedModel) -> LoadedModel:
        """``loaded`` with a following predictor when it is a followable online snapshot
        (caught up before it returns); else ``loaded`` unchanged."""
        predictor = loaded.predictor
        if (
            loaded.alias is None
            or loaded.meta.kind != "online"
            or predictor.flavor != "river"
            or not isinstance(predictor.follow, FollowPoint)
        ):
            self._release((loaded.model, loaded.alias or "pinned"))
            return loaded
        key, slot = (loaded.model, loaded.version), (loaded.model, loaded.alias)
        with self._lock:
            follower = self._followers.get(key)
            serving = slot in self._slots
        if follower is None:
            rebased = self._rebase(loaded)
            if rebased is not None:
                return rebased
        if follower is None and self.threaded and not serving and self.replace is not None:
            # Nothing of this model answers in the slot yet (a start, a new alias): the
            # snapshot answers at once and the follower replaces it once caught up.
            with self._lock:
                older = self._catching.get(slot)
                if older is not None and older.rules.position >= predictor.follow.next_offset:
                    # the catch-up under way has passed this snapshot: it takes this one
                    # as its base when it is done (catching up again would be slower)
                    self._wanted[slot] = loaded
                    return loaded
                self._background += 1
            threading.Thread(
                target=self._catch_up_then_replace,
                args=(loaded,),
                name=f"catch-up-{loaded.model}",
                daemon=True,
            ).start()
            return loaded
        return self._follow(loaded)

    def catching_up(self) -> int:
        """Snapshots catching up in the background (a replica opens once none is)."""
        with self._lock:
            return self._background

    def _rebase(self, loaded: LoadedModel) -> LoadedModel | None:
        """``loaded`` answered by a running follower of the same learner state, or None."""
        assert loaded.alias is not None  # noqa: S101 - prepare's guard
        key, slot = (loaded.model, loaded.version), (loaded.model, loaded.alias)
        with self._lock:
            mine = self._followers.get(self._slots.get(slot, ("", -1)))
            others = [f for (m, _), f in self._followers.items() if m == loaded.model]
        for follower in dict.fromkeys([f for f in (mine, *others) if f is not None]):
            predictor = follower.rebase(loaded.version, loaded.predictor)
            if predictor is None:
                continue
            with self._lock:
                self._followers[key] = follower
            self._release(slot, keep=key)
            self.rebases += 1
            if self.metrics is not None:
                self.metrics.base.labels(model=loaded.model, alias=loaded.alias).set(loaded.version)
            log.info(
                "%s@%s v%d: the follower of v%d has passed it (%d examples learned): "
                "taken as its base, nothing to catch up",
                loaded.model,
                loaded.alias,
                loaded.version,
                follower.version,
                follower.twin.examples,
            )
            return replace(loaded, predictor=predictor)
        return None

    def _follow(self, loaded: LoadedModel) -> LoadedModel:
        """``loaded`` with its (new or shared) follower's predictor; the slot noted."""
        assert loaded.alias is not None  # noqa: S101 - prepare's guard
        key, slot = (loaded.model, loaded.version), (loaded.model, loaded.alias)
        with self._lock:
            follower = self._followers.get(key)
        if follower is None:
            follower = OnlineFollower(
                self.settings,
                loaded.predictor,
                version=loaded.version,
                client_id=self.client_id,
                on_swap=self._swapped_in(loaded.model, loaded.alias),
                in_flight=self.in_flight,
            )
            if self.threaded:
                with self._lock:
                    older = self._catching.get(slot)
                    self._catching[slot] = follower
                if older is not None:
                    older.cancel()
                try:
                    caught_up = follower.catch_up(self.catch_up_s)
                    if follower.stopped:
                        raise _Superseded
                    if not caught_up:
                        log.warning(
                            "%s v%d: not caught up within %.0fs; serving it while it goes on",
                            loaded.model,
                            loaded.version,
                            self.catch_up_s,
                        )
                except BaseException:
                    follower.stop()
                    raise
                finally:
                    with self._lock:
                        if self._catching.get(slot) is follower:
                            del self._catching[slot]
                follower.start()
            with self._lock:
                self._followers[key] = follower
            if self.metrics is not None:
                self.metrics.resyncs.labels(model=loaded.model, alias=loaded.alias).inc()
                self.metrics.base.labels(model=loaded.model, alias=loaded.alias).set(loaded.version)
            log.info(
                "%s@%s follows v%d from offset %d: %d examples learned (%+d since the snapshot)",
                loaded.model,
                loaded.alias,
                loaded.version,
                follower.point.next_offset,
                follower.twin.examples,
                follower.twin.examples - follower.point.example_count,
            )
        self._release(slot, keep=key)
        predictor = follower.predictors.get(loaded.version, follower.predictor)
        return replace(loaded, predictor=predictor)

    def _catch_up_then_replace(self, loaded: LoadedModel) -> None:
        try:
            self._replace_once_caught_up(loaded)
        finally:
            with self._lock:
                self._background -= 1

    def _replace_once_caught_up(self, loaded: LoadedModel) -> None:
        assert loaded.alias is not None and self.replace is not None  # noqa: S101 - prepare's
        key = (loaded.model, loaded.version)
        try:
            prepared = self._follow(loaded)
        except _Superseded:
            log.info("%s v%d: a newer snapshot superseded its catch-up", *key)
            return
        except Exception:  # noqa: BLE001 - the snapshot keeps answering
            log.exception(
                "following %s v%d failed; serving the snapshot", loaded.model, loaded.version
            )
            return
        slot = (loaded.model, loaded.alias)
        with self._lock:
            wanted = self._wanted.pop(slot, None)
        if wanted is not None and wanted.version > loaded.version:
            newer = self._rebase(wanted)  # the snapshot that came meanwhile, if passed
            if newer is not None:
                prepared = newer
        if self.replace(loaded.alias, prepared):
            return
        # The slot moved on meanwhile: drop this follower unless a slot uses it.
        self._release(slot, drop=key)

    def feed(self, stream: str, records: Sequence[tuple[int, int, LabelledExample]]) -> None:
        """Unthreaded followers of ``stream`` learn ``(partition, offset, example)``
        records the caller has scored (each follower only its own partition's)."""
        with self._lock:
            followers = [f for (m, _), f in self._followers.items() if m == stream]
        for follower in dict.fromkeys(followers):
            mine = [(o, e) for p, o, e in records if p == follower.point.partition]
            for offset, example in sorted(mine, key=lambda item: item[0]):
                follower.feed(offset, example)
            follower.settle()

    def removed(self, old: LoadedModel) -> None:
        """The subscriber dropped ``old``'s slot (its alias was removed)."""
        self._release((old.model, old.alias or "pinned"))

    def following(self) -> dict[tuple[str, int], OnlineFollower]:
        """The followers running now, by (model, version) (a follower that took newer
        snapshots as its base appears under each)."""
        with self._lock:
            return dict(self._followers)

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop every follower."""
        with self._lock:
            followers = list(dict.fromkeys(self._followers.values()))
            catching = list(self._catching.values())
            self._followers.clear()
            self._slots.clear()
        for follower in catching:
            follower.cancel()
        for follower in followers:
            follower.stop(timeout_s)

    def _release(
        self,
        slot: tuple[str, str],
        keep: tuple[str, int] | None = None,
        *,
        drop: tuple[str, int] | None = None,
    ) -> None:
        """The slot now holds ``keep`` (or nothing; ``drop``: only if it still holds
        that); a follower no slot uses any more stops."""
        with self._lock:
            if drop is not None and self._slots.get(slot) != drop:
                key: tuple[str, int] | None = drop
            else:
                key = self._slots.pop(slot, None)
                if keep is not None:
                    self._slots[slot] = keep
            used = set(self._slots.values())
            if key is None or key in used:
                return
            follower = self._followers.get(key)
            if follower is None:
                return
            del self._followers[key]
            if any(f is follower for f in self._followers.values()):
                return  # the slot of another version it stands for still uses it
        follower.stop()

    def _swapped_in(self, model: str, alias: str) -> Callable[[OnlineFollower, float | None], None]:
        metrics = self.metrics
        if metrics is None:
            return lambda follower, delay: None
        learned = metrics.learned.labels(model=model, alias=alias)
        behind = metrics.behind.labels(model=model, alias=alias)
        histogram = metrics.delay.labels(model=model, alias=alias)
        paused = metrics.paused.labels(model=model, alias=alias)

        def observe(follower: OnlineFollower, delay: float | None) -> None:
            learned.set(follower.twin.examples)
            behind.set(follower.behind)
            paused.set(1 if follower.paused else 0)
            if delay is not None:
                histogram.observe(max(0.0, delay))

        return observe
