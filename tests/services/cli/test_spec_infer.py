"""``driftline spec infer`` on the files users bring: unnamed columns, number labels."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from services.cli.main import main


def infer(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[dict[str, object], str]:
    capsys.readouterr()
    assert main(["spec", "infer", *argv, "-o", "-"]) == 0
    out = capsys.readouterr()
    return yaml.safe_load(out.out), out.err


def test_an_unnamed_column_is_named_with_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "weather.csv"
    rows = [",day,temp,rain tomorrow"] + [
        f"{i},d{i},{i % 7}.5,{'yes' if i % 3 else 'no'}" for i in range(30)
    ]
    data.write_text("\n".join(rows) + "\n", encoding="utf-8")
    body, err = infer(capsys, str(data), "--label-column", "rain tomorrow", "--id-column", "day")
    spec = body["spec"]
    assert isinstance(spec, dict)
    assert [f["name"] for f in spec["features"]] == ["temp"]
    assert "column 1 has no name in the header" in err and "--id-column" in err
    assert spec["label"] == {"kind": "class", "classes": ["no", "yes"]}


def test_a_number_label_gets_mae_and_regression_candidates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "load.csv"
    rows = ["x,y"] + [f"{i},{i * 0.37:.3f}" for i in range(50)]
    data.write_text("\n".join(rows) + "\n", encoding="utf-8")
    body, _ = infer(capsys, str(data), "--label-column", "y")
    policy = body["policy"]
    assert isinstance(policy, dict)
    assert policy["primary_metric"] == "mae"
    assert "ridge" in policy["retrain"]["candidates"]
    assert "logistic_regression" not in policy["retrain"]["candidates"]
    model = body["model"]
    assert isinstance(model, dict)
    assert model["pipeline"][-1]["estimator"] == "driftline.SelectRegressor"
