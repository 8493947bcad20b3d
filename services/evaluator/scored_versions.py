"""Which versions the evaluator scores for a stream, and the watches after a promotion.

Champion and challenger come from the SDK's
:class:`~services.common.subscriber.ModelSubscriber` (verified, warmed-up, fixed
snapshots). While the champion is a batch version (which does not learn) and no
``challenger`` is set, the latest ``online`` snapshot stands as the challenger
(:func:`pick_challenger`). After a promotion (the champion's last move has reason
``promoted``) a watch is opened and the predecessor is kept and scored on the same
examples, for the rollback rule; after a restart it is loaded from the registry,
verified before it is unpickled.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable

from schemas import AliasReason
from services.common.stream_configs import StreamConfigs
from services.common.subscriber import LoadedModel, ModelSubscriber
from services.evaluator.state import EvaluatorState, Role, Served
from services.registry.client import Registry

log = logging.getLogger(__name__)
ALIASES = ("champion", "challenger", "online")
PREDECESSORS_KEPT = 8


def pick_challenger(
    champion: LoadedModel | None, challenger: LoadedModel | None, online: LoadedModel | None
) -> LoadedModel | None:
    """The version to challenge the champion with: the ``challenger`` alias when set, else
    the latest online snapshot while the champion is a batch model (which stops learning).
    """
    if challenger is not None or champion is None or champion.meta.kind != "batch":
        return challenger
    return online


def served(loaded: LoadedModel, family: str | None = None) -> Served:
    """A loaded version as the scoring core takes it."""
    return Served(
        version=loaded.version,
        predictor=loaded.predictor,
        lineage=loaded.meta.lineage,
        family=family,
    )


class ScoredVersions:
    """The versions scored per stream: champion, challenger and, under a watch, the
    champion's predecessor.

    ``online_challenger``: whether the online snapshot challenges a batch champion when no
    ``challenger`` is set (``DRIFTLINE_EVALUATOR_ONLINE_CHALLENGER``).
    """

    def __init__(self, registry: Registry, *, online_challenger: bool) -> None:
        self.registry = registry
        self.online_challenger = online_challenger
        self.predecessors: OrderedDict[tuple[str, int], Served] = OrderedDict()
        self._lock = threading.Lock()  # predecessors are added from the subscriber's thread
        self.last_champion: dict[str, int] = {}  # the champion seen last, per stream

    def forget_champions(self) -> None:
        """Look at every champion again (on becoming active: the watches are the
        checkpoint's)."""
        self.last_champion.clear()

    def swapped(self, new: LoadedModel, old: LoadedModel | None) -> None:
        """Subscriber thread: keep the version a champion replaced, for the rollback rule."""
        if old is not None:
            self._remember(old.model, served(old))

    def settled(self, sub: ModelSubscriber, models: Iterable[str]) -> bool:
        """Caught up, and every followed alias of ``models`` is loaded (or refused)."""
        if not sub.caught_up():
            return False
        refused = {(f.model, f.version) for f in sub.history() if not isinstance(f, LoadedModel)}
        for model in models:
            for alias, version in sub.aliases(model).items():
                have = sub.get(model, alias) if alias in ALIASES else None
                if alias in ALIASES and (have is None or have.version != version):
                    if (model, version) not in refused:
                        return False
        return True

    def of(
        self, sub: ModelSubscriber, stream: str, state: EvaluatorState
    ) -> dict[Role, Served | None]:
        """The versions to score ``stream``'s examples with."""
        champion_loaded = sub.get(stream, "champion")
        challenger_loaded = sub.get(stream, "challenger")
        online = sub.get(stream, "online") if self.online_challenger else None
        picked = pick_challenger(champion_loaded, challenger_loaded, online)
        models: dict[Role, Served | None] = {
            "champion": served(champion_loaded) if champion_loaded is not None else None,
            "challenger": (
                None
                if picked is None
                else served(picked, family="online" if picked is online else None)
            ),
        }
        watch = state.watches.get(stream)
        champion = models.get("champion")
        if watch is not None and champion is not None and watch.champion == champion.version:
            models["predecessor"] = self._predecessor(stream, watch.predecessor)
        return models

    def observe_champions(
        self, sub: ModelSubscriber, state: EvaluatorState, configs: StreamConfigs
    ) -> None:
        """On a champion change, open a watch if it was a promotion, else close it."""
        for (model, alias), loaded in sub.loaded().items():
            if alias != "champion" or self.last_champion.get(model) == loaded.version:
                continue
            self.last_champion[model] = loaded.version
            watch = state.watches.get(model)
            if watch is not None and watch.champion == loaded.version:
                continue  # restored from a checkpoint
            history = self.registry.alias_history(model=model, alias="champion", limit=1)
            last = history[0] if history else None
            config = configs.get(model)
            if (
                last is not None
                and config is not None
                and last.to_version == loaded.version
                and last.from_version is not None
                and last.reason == AliasReason.PROMOTED.value
            ):
                state.watch(
                    model,
                    metric=config.policy.primary_metric_for(config.spec.label.kind),
                    champion=loaded.version,
                    predecessor=last.from_version,
                    window=config.policy.rolling_window,
                )
                log.info(
                    "watching %s v%d against its predecessor v%d",
                    model,
                    loaded.version,
                    last.from_version,
                    extra={"model": model},
                )
            elif watch is not None:
                state.unwatch(model)

    def _remember(self, model: str, version: Served) -> None:
        with self._lock:
            self.predecessors[(model, version.version)] = version
            self.predecessors.move_to_end((model, version.version))
            while len(self.predecessors) > PREDECESSORS_KEPT:
                self.predecessors.popitem(last=False)

    def _predecessor(self, model: str, version: int) -> Served | None:
        with self._lock:
            found = self.predecessors.get((model, version))
        if found is not None:
            return found
        try:  # after a restart: from the registry, verified before unpickling
            meta = self.registry.get_version(model=model, version=version)
            predictor = self.registry.load_predictor(model=model, version=version)
        except Exception:  # noqa: BLE001 - no predecessor: the rollback rule waits
            log.exception("cannot load predecessor %s v%d", model, version)
            return None
        if meta is None:
            return None
        found = Served(version=version, predictor=predictor, lineage=meta.lineage)
        self._remember(model, found)
        return found
