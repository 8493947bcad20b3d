"""The registry's data layer: keyword-only functions on a Session, returning domain models.

Rows never leave this package; callers (the SQL store) own the transaction. One module per
family of tables, every function re-exported here (``repository.move_alias(...)``):

- :mod:`.specs`: streams and their published config versions;
- :mod:`.versions`: models and their numbered versions;
- :mod:`.alias_moves`: aliases and their compare-and-set moves;
- :mod:`.checkpoints`: the learner's checkpoint rows;
- :mod:`.runs`: training runs and their candidates;
- :mod:`.outbox`: handled event ids and the outbox;
- :mod:`.artifact_retention`: which artifacts nothing needs any more;
- :mod:`.dialects`: what SQLite and PostgreSQL do differently.
"""

from __future__ import annotations

from services.registry.repository.alias_moves import (
    alias_history,
    aliases,
    get_alias,
    move_alias,
    move_by_event_id,
)
from services.registry.repository.artifact_retention import (
    RECENT_MOVES,
    collect_versions,
    mark_archived,
    referenced_sha256,
)
from services.registry.repository.checkpoints import (
    checkpoint_by_id,
    checkpoints_newest_first,
    insert_checkpoint,
    latest_checkpoint,
    latest_checkpoints_under,
    prune_checkpoints,
)
from services.registry.repository.dialects import (
    aware,
    insert_ignore,
)
from services.registry.repository.outbox import (
    add_outbox,
    mark_handled,
    mark_published,
    outbox_backlog,
    pending_outbox,
    prune_handled,
    prune_outbox,
    was_handled,
)
from services.registry.repository.runs import (
    add_candidate,
    finish_run,
    get_run,
    list_runs,
    start_run,
)
from services.registry.repository.specs import (
    get_spec,
    record_spec,
    spec_by_sha256,
)
from services.registry.repository.versions import (
    ensure_model,
    get_model,
    get_version,
    insert_version,
    list_models,
    list_versions,
    next_version,
    set_frozen,
    version_by_key,
    version_event,
    versions_by_sha256,
)

__all__ = [
    "RECENT_MOVES",
    "add_candidate",
    "add_outbox",
    "alias_history",
    "aliases",
    "aware",
    "checkpoint_by_id",
    "checkpoints_newest_first",
    "collect_versions",
    "ensure_model",
    "finish_run",
    "get_alias",
    "get_model",
    "get_run",
    "get_spec",
    "get_version",
    "insert_checkpoint",
    "insert_ignore",
    "insert_version",
    "latest_checkpoint",
    "latest_checkpoints_under",
    "list_models",
    "list_runs",
    "list_versions",
    "mark_archived",
    "mark_handled",
    "mark_published",
    "move_alias",
    "move_by_event_id",
    "next_version",
    "outbox_backlog",
    "pending_outbox",
    "prune_checkpoints",
    "prune_handled",
    "prune_outbox",
    "record_spec",
    "referenced_sha256",
    "set_frozen",
    "spec_by_sha256",
    "start_run",
    "version_by_key",
    "version_event",
    "versions_by_sha256",
    "was_handled",
]
