"""Serving's HTTP API with FastAPI's TestClient over a subscriber fed real signed artifacts
(no broker: records are handed to the subscriber as its thread would)."""

from __future__ import annotations

import itertools
import json
import re
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from river.datasets import synth

from schemas import ShadowPair
from services.common.metrics import Metrics
from services.common.subscriber import ModelSubscriber
from services.serving.api import create_app
from services.serving.metrics import ServingMetrics
from services.serving.shadow import ShadowScorer
from tests.services.common.test_subscriber import Store, subscriber

with warnings.catch_warnings():
    # Starlette 1.x asks for the httpx2 package and warns when it falls back on httpx.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

ROWS = [
    {f"x{i}": float(v) for i, v in x.items()} for x, _ in itertools.islice(synth.SEA(seed=5), 25)
]


class Fixture:
    def __init__(self, tmp_path: Path) -> None:
        self.store = Store(tmp_path)
        self.models, _ = subscriber(aliases=("champion", "challenger"))
        self.models._mark_caught_up()
        self.pairs: list[ShadowPair] = []
        self.metrics = ServingMetrics(Metrics("serving"))
        self.shadow = ShadowScorer(self.pairs.append, self.metrics, size=100).start()
        app = create_app(self.models, metrics=self.metrics, replica_id="r1", shadow=self.shadow)
        self.client = TestClient(app)

    def publish(self, version: int, alias: str = "champion") -> None:
        self.models._process(
            [self.store.version("sea", version), self.store.alias("sea", alias, version)]
        )


@pytest.fixture
def fx(tmp_path: Path) -> Iterator[Fixture]:
    fixture = Fixture(tmp_path)
    yield fixture
    fixture.shadow.stop(5)
    fixture.client.close()


def tensors(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": "req-1",
        "inputs": [
            {"name": f, "shape": [len(rows)], "datatype": "FP64", "data": [r[f] for r in rows]}
            for f in ("x0", "x1", "x2")
        ],
    }


def expected(models: ModelSubscriber, alias: str = "champion") -> list[Any]:
    loaded = models.get("sea", alias)
    assert loaded is not None
    return loaded.predictor.predict_many(ROWS)


def test_not_ready_until_a_model_is_loaded(fx: Fixture) -> None:
    assert fx.client.get("/healthz").status_code == 200
    assert fx.client.get("/v2/health/live").status_code == 200
    assert fx.client.get("/readyz").status_code == 503
    assert fx.client.get("/v2/health/ready").status_code == 503
    fx.models._process([fx.store.version("sea", 1)])  # known, but no champion yet
    answer = fx.client.post("/models/sea/predict", json={"instances": ROWS[:1]})
    assert answer.status_code == 503 and "no version of 'sea'" in answer.json()["detail"]
    assert fx.client.get("/v2/models/sea/ready").status_code == 503
    fx.publish(1)
    ready = fx.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["loaded"] == {"sea@champion": 1}
    assert fx.client.get("/v2/models/sea/ready").status_code == 200


def test_v2_infer_names_model_and_version(fx: Fixture) -> None:
    fx.publish(1)
    answer = fx.client.post("/v2/models/sea/infer", json=tensors(ROWS))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["model_name"], body["model_version"], body["id"]) == ("sea", "1", "req-1")
    assert body["parameters"]["version"] == 1 and body["parameters"]["alias"] == "champion"
    prediction, probabilities = body["outputs"]
    assert prediction["datatype"] == "BOOL" and prediction["shape"] == [25]
    assert prediction["data"] == expected(fx.models)
    assert probabilities["shape"] == [25, 2]
    assert json.loads(probabilities["parameters"]["classes"]) == ["False", "True"]
    fx.publish(2)
    swapped = fx.client.post("/v2/models/sea/infer", json=tensors(ROWS)).json()
    assert swapped["model_version"] == "2"
    assert swapped["outputs"][0]["data"] == expected(fx.models)


def test_v2_instances_input_and_output_selection(fx: Fixture) -> None:
    fx.publish(1)
    body = {
        "inputs": [
            {
                "name": "instances",
                "shape": [3],
                "datatype": "BYTES",
                "data": [json.dumps(ROWS[0]), ROWS[1], json.dumps(ROWS[2])],
            }
        ],
        "outputs": [{"name": "prediction"}],
    }
    answer = fx.client.post("/v2/models/sea/infer", json=body)
    assert answer.status_code == 200, answer.text
    (only,) = answer.json()["outputs"]
    assert only["name"] == "prediction" and only["data"] == expected(fx.models)[:3]


def test_versioned_infer_only_for_a_loaded_version(fx: Fixture) -> None:
    fx.publish(1)
    fx.publish(2, alias="challenger")
    ok = fx.client.post("/v2/models/sea/versions/2/infer", json=tensors(ROWS))
    assert ok.status_code == 200 and ok.json()["model_version"] == "2"
    missing = fx.client.post("/v2/models/sea/versions/7/infer", json=tensors(ROWS))
    assert missing.status_code == 404 and "version 7" in missing.json()["detail"]


def test_json_predict_many_rows_and_alias(fx: Fixture) -> None:
    fx.publish(1)
    fx.publish(2, alias="challenger")
    answer = fx.client.post("/models/sea/predict", json={"instances": ROWS})
    assert answer.status_code == 200
    body = answer.json()
    assert (body["model"], body["version"], body["alias"]) == ("sea", 1, "champion")
    assert body["predictions"] == expected(fx.models)
    assert len(body["probabilities"]) == 25
    challenger = fx.client.post(
        "/models/sea/predict", json={"instances": ROWS, "alias": "challenger"}
    ).json()
    assert challenger["version"] == 2 and challenger["predictions"] == expected(
        fx.models, "challenger"
    )


def test_metadata_models_metrics_and_openapi(fx: Fixture) -> None:
    fx.publish(1)
    meta = fx.client.get("/v2/models/sea").json()
    assert meta["name"] == "sea" and meta["versions"] == ["1"]
    assert [(i["name"], i["datatype"]) for i in meta["inputs"]] == [
        ("x0", "FP64"),
        ("x1", "FP64"),
        ("x2", "FP64"),
    ]
    assert fx.client.get("/v2").json()["name"] == "driftline-serving"
    fx.client.post("/models/sea/predict", json={"instances": ROWS[:2]})
    listing = fx.client.get("/models").json()
    assert listing["models"]["sea"]["loaded"]["champion"]["version"] == 1
    assert listing["models"]["sea"]["aliases"] == {"champion": 1}
    assert [h["event"] for h in listing["history"]] == ["loaded"]
    text = fx.client.get("/metrics").text
    assert 'driftline_serving_requests_total{model="sea",outcome="ok",version="1"} 1.0' in text
    assert "driftline_serving_request_seconds_bucket" in text
    paths = fx.client.get("/openapi.json").json()["paths"]
    assert {"/v2/models/{model}/infer", "/models/{model}/predict", "/readyz"} <= set(paths)


def test_unknown_model_and_alias_are_404(fx: Fixture) -> None:
    fx.publish(1)
    nope = fx.client.post("/models/nope/predict", json={"instances": ROWS[:1]})
    assert nope.status_code == 404 and "nope" in nope.json()["detail"]
    alias = fx.client.post("/models/sea/predict", json={"instances": ROWS[:1], "alias": "x"})
    assert alias.status_code == 404 and "followed: champion, challenger" in alias.json()["detail"]
    assert fx.client.get("/v2/models/nope").status_code == 404
    text = fx.client.get("/metrics").text
    assert 'model="unknown",outcome="not_found"' in text  # no label per unknown name


GOOD = {"x0": 1.0, "x1": 2.0, "x2": 3.0}
MALFORMED: list[tuple[str, str, Any, str]] = [
    ("/models/sea/predict", "missing", {"instances": [{"x0": 1.0, "x1": 2.0}]}, "'x2' is missing"),
    ("/models/sea/predict", "type", {"instances": [GOOD | {"x1": "2"}]}, "'x1' must be a number"),
    ("/models/sea/predict", "bool", {"instances": [GOOD | {"x1": True}]}, "'x1' must be a number"),
    ("/models/sea/predict", "null", {"instances": [GOOD | {"x2": None}]}, "is null"),
    ("/models/sea/predict", "empty", {"instances": []}, "instances"),
    ("/models/sea/predict", "no body", None, "body"),
    ("/models/sea/predict", "not rows", {"instances": [1, 2]}, "instances.0"),
    ("/models/sea/predict", "extra key", {"instances": [GOOD], "foo": 1}, "foo"),
    ("/models/sea/predict", "ids", {"instances": [GOOD], "ids": ["a", "b"]}, "one per row"),
    ("/models/sea/predict", "inf", '{"instances": [{"x0": 1e999, "x1": 1, "x2": 1}]}', "finite"),
    ("/models/sea/predict", "not json", "{nope", "JSON"),
    (
        "/v2/models/sea/infer",
        "shape",
        {"inputs": [{"name": "x0", "shape": [2], "datatype": "FP64", "data": [1.0]}]},
        "data has 1",
    ),
    (
        "/v2/models/sea/infer",
        "rows",
        {
            "inputs": [
                {"name": "x0", "shape": [1], "datatype": "FP64", "data": [1.0]},
                {"name": "x1", "shape": [2], "datatype": "FP64", "data": [1.0, 2.0]},
            ]
        },
        "disagree",
    ),
    (
        "/v2/models/sea/infer",
        "datatype",
        {"inputs": [{"name": "x0", "shape": [1], "datatype": "FP128", "data": [1.0]}]},
        "FP128",
    ),
    (
        "/v2/models/sea/infer",
        "value",
        {"inputs": [{"name": "x0", "shape": [1], "datatype": "FP64", "data": ["a"]}]},
        "is not FP64",
    ),
    (
        "/v2/models/sea/infer",
        "2-d",
        {"inputs": [{"name": "x0", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]},
        "[N, 1]",
    ),
    ("/v2/models/sea/infer", "no inputs", {"inputs": []}, "inputs"),
    (
        "/v2/models/sea/infer",
        "instances",
        {"inputs": [{"name": "instances", "shape": [1], "datatype": "BYTES", "data": ["[1]"]}]},
        "JSON object",
    ),
    (
        "/v2/models/sea/infer",
        "missing",
        {"inputs": [{"name": "x0", "shape": [1], "datatype": "FP64", "data": [1.0]}]},
        "'x1' is missing",
    ),
    ("/v2/models/sea/infer", "alias", {**tensors(ROWS[:1]), "parameters": {"alias": 3}}, "alias"),
]


@pytest.mark.parametrize(
    ("path", "body", "words"),
    [(p, b, w) for p, _, b, w in MALFORMED],
    ids=[f"{p.split('/')[1]}-{name}" for p, name, _, _ in MALFORMED],
)
def test_malformed_requests_are_422_with_a_clear_message(
    fx: Fixture, path: str, body: Any, words: str
) -> None:
    fx.publish(1)
    if isinstance(body, str):
        answer = fx.client.post(path, content=body, headers={"content-type": "application/json"})
    elif body is None:
        answer = fx.client.post(path)
    else:
        answer = fx.client.post(path, json=body)
    assert answer.status_code == 422, answer.text
    assert words in answer.json()["detail"], answer.json()["detail"]


def test_shadow_pairs_for_rows_with_ids(fx: Fixture) -> None:
    fx.publish(1)
    answer = fx.client.post(
        "/models/sea/predict", json={"instances": ROWS[:3], "ids": ["a", "b", "c"]}
    )
    assert answer.status_code == 200
    assert fx.shadow.pending() == 0 and fx.pairs == []  # no challenger yet: nothing to pair
    fx.publish(2, alias="challenger")
    answer = fx.client.post(
        "/models/sea/predict", json={"instances": ROWS[:3], "ids": ["a", "b", "c"]}
    )
    assert answer.status_code == 200
    fx.client.post("/models/sea/predict", json={"instances": ROWS[:3]})  # no ids: no pairs
    deadline = time.monotonic() + 30
    while len(fx.pairs) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [p.example_id for p in fx.pairs] == ["a", "b", "c"]
    assert {(p.champion.version, p.challenger.version) for p in fx.pairs} == {(1, 2)}
    assert [p.champion.prediction for p in fx.pairs] == answer.json()["predictions"]
    assert [p.challenger.prediction for p in fx.pairs] == expected(fx.models, "challenger")[:3]


# -- stock V2 clients' habits and hostile input --------------------------------------------


def v2_body(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": f, "shape": [len(rows)], "datatype": "FP64", "data": [r[f] for r in rows]}
            for f in ("x0", "x1", "x2")
        ]
    }


@pytest.mark.parametrize("content_type", [None, "application/x-www-form-urlencoded", "text/plain"])
def test_json_body_whatever_the_content_type(fx: Fixture, content_type: str | None) -> None:
    fx.publish(1)
    headers = {"content-type": content_type} if content_type else {}
    for path, body in (
        ("/v2/models/sea/infer", v2_body(ROWS[:2])),
        ("/models/sea/predict", {"instances": ROWS[:2]}),
    ):
        request = fx.client.build_request("POST", path, content=json.dumps(body), headers=headers)
        assert "content-type" not in request.headers or content_type is not None
        answer = fx.client.send(request)
        assert answer.status_code == 200, answer.text


def test_binary_tensor_data_extension(fx: Fixture) -> None:
    import struct

    fx.publish(1)
    rows = ROWS[:3]
    head: dict[str, Any] = {"model_name": "sea", "id": "b1", "inputs": []}
    raw = b""
    for f in ("x0", "x1", "x2"):
        data = struct.pack("<3f", *(r[f] for r in rows))
        head["inputs"].append(
            {"name": f, "shape": [3], "datatype": "FP32", "parameters": {"binary_data_size": 12}}
        )
        raw += data
    text = json.dumps(head).encode()
    answer = fx.client.post(
        "/v2/models/sea/infer",
        content=text + raw,
        headers={
            "inference-header-content-length": str(len(text)),
            "content-type": "application/octet-stream",
        },
    )
    assert answer.status_code == 200, answer.text
    as32 = [{f: struct.unpack("<f", struct.pack("<f", r[f]))[0] for f in r} for r in rows]
    loaded = fx.models.get("sea", "champion")
    assert loaded is not None
    assert answer.json()["outputs"][0]["data"] == loaded.predictor.predict_many(as32)
    cut = fx.client.post(
        "/v2/models/sea/infer",
        content=text + raw[:-4],
        headers={"inference-header-content-length": str(len(text))},
    )
    assert cut.status_code == 422 and "binary_data_size" in cut.json()["error"]


def test_v2_health_ready_and_version_routes(fx: Fixture) -> None:
    assert fx.client.get("/v2/health/live").json() == {"live": True}
    assert fx.client.get("/v2/health/ready").status_code == 503
    fx.publish(1)
    fx.publish(2, alias="challenger")
    assert fx.client.get("/v2/health/ready").json() == {"ready": True, "name": None}
    assert fx.client.get("/v2/models/sea/versions/2/ready").json()["ready"] is True
    assert fx.client.get("/v2/models/sea/versions/3/ready").status_code == 404
    assert fx.client.get("/v2/models/sea/versions/2").json()["versions"] == ["2"]
    answer = fx.client.post("/v2/models/sea/infer", json=v2_body(ROWS[:1])).json()
    assert all(isinstance(v, str | int | float | bool) for v in answer["parameters"].values())
    wrong = fx.client.post("/v2/models/sea/infer", json=v2_body(ROWS[:1]) | {"model_name": "x"})
    assert wrong.status_code == 422 and "model_name" in wrong.json()["error"]


@pytest.mark.parametrize(
    "body",
    [
        b'{"instances": [{"x0": NaN, "x1": 1, "x2": 1}]}',
        b'{"instances": [{"x0": Infinity, "x1": 1, "x2": 1}]}',
        b'{"instances": [{"x0": 1e400, "x1": 1, "x2": 1}]}',
        b'{"instances": [{"x0": "\\ud800", "x1": 1, "x2": 1}]}',
        b"\xff\xfe not utf-8",
    ],
)
def test_non_finite_numbers_and_bad_text_are_422(fx: Fixture, body: bytes) -> None:
    fx.publish(1)
    answer = fx.client.post(
        "/models/sea/predict", content=body, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 422, answer.text
    assert set(answer.json()) >= {"error", "detail"}


def test_errors_quote_only_a_short_excerpt_and_large_bodies_are_413(tmp_path: Path) -> None:
    fixture = Fixture(tmp_path)
    app = create_app(
        fixture.models, metrics=fixture.metrics, replica_id="r1", max_body_bytes=100_000
    )
    with TestClient(app) as client:
        fixture.publish(1)
        big = "x" * 90_000
        answer = client.post("/models/sea/predict", json={"instances": [GOOD | {"x1": big}]})
        assert answer.status_code == 422 and len(answer.content) < 1000, len(answer.content)
        huge = client.post("/models/sea/predict", json={"instances": [{"x1": "y" * 200_000}]})
        assert huge.status_code == 413 and "error" in huge.json()
    fixture.shadow.stop(5)


def test_strict_spec_refuses_what_is_flagged_otherwise(tmp_path: Path) -> None:
    from schemas import FeatureSpec

    spec = [FeatureSpec(name="x0", type="number", min=0, max=10)]
    outside = {"instances": [GOOD | {"x0": 50.0}]}
    for strict, status in ((False, 200), (True, 422)):
        (tmp_path / str(strict)).mkdir()
        fixture = Fixture(tmp_path / str(strict))
        app = create_app(
            fixture.models,
            metrics=fixture.metrics,
            replica_id="r1",
            spec=lambda model: spec,
            strict_spec=strict,
        )
        with TestClient(app) as client:
            fixture.publish(1)
            answer = client.post("/models/sea/predict", json=outside)
            assert answer.status_code == status, answer.text
            if strict:
                assert "'x0' is 50.0, above the spec's max 10.0" in answer.json()["error"]
            else:
                assert answer.json()["out_of_spec"] == {"x0": 1}
        fixture.shadow.stop(5)


def test_docs_are_served_from_installed_assets(fx: Fixture) -> None:
    for page in ("/docs", "/redoc"):
        html = fx.client.get(page).text
        assert "http" not in html.split("<body", 1)[-1].replace("http-equiv", ""), html
        for src in re.findall(r'(?:src|href)="(/docs-assets/[^"]+)"', html):
            assert fx.client.get(src).status_code == 200, src
    assert fx.client.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
