"""Reading stream config files for ``driftline spec publish``: files and directories,
all validated before anything is published."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from schemas import StreamConfig
from services.common.config_files import config_paths, config_to_yaml, read_config_files
from services.common.errors import ConfigError

BODY = {
    "spec": {
        "features": [{"name": "x", "type": "number"}],
        "label": {"kind": "class", "classes": [0, 1]},
    }
}


def write(path: Path, stream: str) -> Path:
    config = StreamConfig.model_validate({"stream": stream, **BODY})
    path.write_text(config_to_yaml(config), encoding="utf-8")
    return path


def test_directories_expand_to_their_yaml_files_in_order(tmp_path: Path) -> None:
    folder = tmp_path / "streams"
    folder.mkdir()
    b, a, c = write(folder / "b.yaml", "b"), write(folder / "a.yml", "a"), folder / "notes.txt"
    c.write_text("not a config")
    (folder / "nested").mkdir()
    write(folder / "nested" / "n.yaml", "n")  # not recursive
    extra = write(tmp_path / "z.yaml", "z")
    assert config_paths([folder, extra, b]) == [a, b, extra]  # b once
    read = read_config_files(config_paths([folder, extra]))
    assert [(p.name, c.stream, v) for p, c, v in read] == [
        ("a.yml", "a", False),
        ("b.yaml", "b", False),
        ("z.yaml", "z", False),
    ]


def test_missing_paths_and_empty_directories_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nope: no such file or directory"):
        config_paths([tmp_path / "nope"])
    with pytest.raises(ConfigError, match=r"no \*\.yaml or \*\.yml config"):
        config_paths([tmp_path])


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    good = write(tmp_path / "good.yaml", "good")
    broken = tmp_path / "broken.yaml"
    broken.write_text("stream: [\n")
    invalid = tmp_path / "invalid.yaml"
    invalid.write_text("stream: s\nspec: {features: []}\n")
    twin = write(tmp_path / "twin.yaml", "good")
    with pytest.raises(ConfigError) as info:
        read_config_files([good, broken, invalid, twin])
    message = str(info.value)
    assert "3 problem(s) in 4 files; nothing was published" in message
    assert f"{broken}: not valid YAML" in message
    assert f"{invalid}: not a valid stream config" in message
    assert f"{good}: stream 'good' is also in {twin}" in message


def test_one_file_keeps_its_own_message(tmp_path: Path) -> None:
    invalid = tmp_path / "invalid.yaml"
    invalid.write_text("stream: s\nspec: {features: []}\n")
    with pytest.raises(ConfigError, match=f"^{re.escape(str(invalid))}: not a valid stream"):
        read_config_files([invalid])


def test_a_config_too_big_for_the_topic_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    categories = [f"c{i:07d}" for i in range(100_000)]
    big.write_text(
        "stream: big\nspec:\n  features:\n  - {name: c, type: category, categories: "
        f"[{', '.join(categories)}]}}\n  label: {{kind: class, classes: [0, 1]}}\n"
    )
    with pytest.raises(ConfigError, match="more than the 1,000,000 a record"):
        read_config_files([big])
