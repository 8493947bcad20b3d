"""Two processes writing one SQLite registry: monotonic versions, exactly one CAS winner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from schemas import AliasReason
from services.registry.client import Registry
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
