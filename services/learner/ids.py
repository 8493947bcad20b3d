"""The learner's id window, now shared with the online followers: see
:mod:`services.common.example_ids` (kept here so checkpoints pickled before the move
still load)."""

from services.common.example_ids import IdWindow, digest

__all__ = ["IdWindow", "digest"]
