"""Two processes writing one SQLite registry: monotonic versions, exactly one CAS winner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from schemas import AliasReason
from services.common.settings import DriftlineSettings
from services.registry.client import ANY, AliasConflict, Registry
from services.registry.tables import AliasRow
from tests.services.registry.helpers import predictor

WORKER = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path
    from schemas import AliasReason
    from services.common.settings import DriftlineSettings
    from services.registry.client import Registry
    from services.registry.errors import AliasConflict
    from tests.services.registry.helpers import predictor

    name, go = sys.argv[1], Path(sys.argv[2])
    registry = Registry.open(DriftlineSettings.load(), relay=False)
    deadline = time.monotonic() + 60
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.01)  # a start barrier, so both processes really race
    versions = [registry.register_version(model="sea", kind="online",
                                          predictor=predictor(i + 1)).version
                for i in range(int(os.environ["N_VERSIONS"]))]
    try:
        registry.move_alias(model="sea", alias="champion", to_version=versions[-1], expect=1,
                            reason=AliasReason.PROMOTED, actor=name)
        won = True
    except AliasConflict:
        won = False
    registry.close()
    print(json.dumps({"versions": versions, "won": won}))
    """
)


@pytest.mark.parametrize("n_versions", [8])
def test_two_processes_race(
    settings_env: dict[str, str], tmp_path: Path, n_versions: int, registry: Registry
) -> None:
    registry.register_version(model="sea", kind="online", predictor=predictor())
    registry.move_alias(
        model="sea",
        alias="champion",
        to_version=1,
        expect=None,
        reason=AliasReason.MANUAL,
        actor="setup",
    )
    go = tmp_path / "go"
    env = os.environ | settings_env | {"N_VERSIONS": str(n_versions), "PYTHONPATH": str(Path.cwd())}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, f"writer-{i}", str(go)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for i in range(2)
    ]
    go.touch()  # the barrier: both start writing together
    outputs = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=180)
            outputs.append((proc.returncode, out.decode(), err.decode()))
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    for code, _out, err in outputs:
        assert code == 0, err[-3000:]
    results = [json.loads(out.strip().splitlines()[-1]) for _, out, _ in outputs]
    numbers = sorted(v for r in results for v in r["versions"])
    assert numbers == list(range(2, 2 + 2 * n_versions))
    assert sorted(r["won"] for r in results) == [False, True]
    winner = next(r for r in results if r["won"])
    assert registry.get_alias(model="sea", alias="champion") == winner["versions"][-1]
    history = registry.alias_history(model="sea", alias="champion")
    assert [m.from_version for m in history] == [1, None]


def test_a_racing_first_move_is_a_conflict_or_a_move_from_what_it_wrote(
    settings: DriftlineSettings, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two writers both read an alias as unset, the other inserts it first (on PostgreSQL
    the row lock cannot cover a row that did not exist): this one's insert hits the
    primary key and the compare-and-set is judged against the other's value, never a
    refused value (HTTP 400 through the API)."""
    for i in range(3):
        registry.register_version(model="sea", kind="online", predictor=predictor(i + 1))
    registry.move_alias(
        model="sea",
        alias="online",
        to_version=1,
        expect=None,
        reason=AliasReason.MANUAL,
        actor="the other writer",
    )
    real_get = Session.get

    def stale_get(self: Session, entity: Any, ident: Any, **kw: Any) -> Any:
        if entity is AliasRow and kw.get("with_for_update"):
            return None  # read before the other writer committed its insert
        return real_get(self, entity, ident, **kw)

    monkeypatch.setattr(Session, "get", stale_get)
    with pytest.raises(AliasConflict) as conflict:
        registry.move_alias(
            model="sea",
            alias="online",
            to_version=2,
            expect=None,
            reason=AliasReason.ONLINE_UPDATE,
            actor="this writer",
        )
    assert conflict.value.actual == 1
    moved = registry.move_alias(
        model="sea",
        alias="online",
        to_version=3,
        expect=ANY,
        reason=AliasReason.MANUAL,
        actor="this writer",
    )
    assert (moved.from_version, moved.to_version) == (1, 3)
    monkeypatch.undo()
    assert registry.get_alias(model="sea", alias="online") == 3
