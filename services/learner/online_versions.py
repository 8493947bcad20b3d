"""The learner's online versions: a stream's learner registered as a signed snapshot,
then the ``online`` and ``champion`` aliases moved after it.

``online`` follows every snapshot; ``champion`` starts there (cold start) and follows while
it points at an online version, so an online champion keeps learning. Frozen models are
left alone, and aliases never move backwards here: only a decision (rollback, promote)
does that.
"""

from __future__ import annotations

import logging

from schemas import AliasReason
from services.common.online_follow import FollowPoint
from services.common.predictor import Predictor
from services.learner.state import PartitionState
from services.registry.client import AliasConflict, FrozenModel, ModelVersion, Registry

log = logging.getLogger(__name__)


def register_online(
    registry: Registry, state: PartitionState, stream: str, *, dedupe_window: int
) -> ModelVersion:
    """Register the stream's learner in ``state`` as an online version (idempotent on the
    state's version key) and move the aliases after it; returns the version."""
    track = state.streams[stream]
    snapshot = track.learner.snapshot()
    learner = track.learner
    # The live model, not a copy: register_version pickles it before returning.
    predictor = Predictor.river(
        learner.model, spec=learner.config.spec, spec_sha256=learner.spec_sha256
    )
    predictor.follow = FollowPoint(
        stream=stream,
        topic=state.topic,
        partition=state.partition,
        next_offset=state.next_offset,
        example_count=learner.examples_seen,
        config_version=track.checked_config_version or track.config_version,
        spec=learner.config.spec,
        ids=track.ids(),
        dedupe_window=dedupe_window,
        learner_id=track.learner_id,
    )
    version = registry.register_version(
        model=stream,
        kind="online",
        predictor=predictor,
        params={
            "pipeline": track.learner.config.model.model_dump(mode="json"),
            "config_version": track.config_version,
        },
        metrics=snapshot.values,
        lineage=track.lineage(state.topic, state.partition),
        parent_version=track.online_version,
        idempotency_key=state.version_key(stream),
    )
    track.online_version = version.version
    move_aliases(registry, stream, version.version)
    return version


def move_aliases(registry: Registry, stream: str, version: int) -> None:
    """Move ``online`` (and ``champion`` on a cold start or while it is online) to the
    new online ``version`` of ``stream``."""
    for _ in range(3):  # a concurrent move changes the expectation: look again
        info = registry.get_model(name=stream)
        if info is None or info.frozen:
            return
        try:
            online = info.aliases.get("online")
            if online is not None and online > version:
                # A snapshot re-registered after a restart (its idempotency key gives
                # back the version it had) or another state of the stream: aliases
                # move backwards only by a decision (rollback, promote), never here.
                log.info(
                    "online alias of %s stays at v%d (newer than v%d)", stream, online, version
                )
                return
            if online != version:
                registry.move_alias(
                    model=stream,
                    alias="online",
                    to_version=version,
                    expect=online,
                    reason=AliasReason.ONLINE_UPDATE,
                    actor="learner",
                )
            champion = info.aliases.get("champion")
            if champion is None:
                registry.move_alias(
                    model=stream,
                    alias="champion",
                    to_version=version,
                    expect=None,
                    reason=AliasReason.COLD_START,
                    actor="learner",
                    evidence={"rule": "no champion: the first online snapshot"},
                )
            elif champion < version:
                current = registry.get_version(model=stream, version=champion)
                if current is not None and current.kind == "online":
                    registry.move_alias(
                        model=stream,
                        alias="champion",
                        to_version=version,
                        expect=champion,
                        reason=AliasReason.ONLINE_UPDATE,
                        actor="learner",
                        evidence={"rule": "an online champion keeps learning"},
                    )
            return
        except AliasConflict:
            continue
        except FrozenModel:
            return
