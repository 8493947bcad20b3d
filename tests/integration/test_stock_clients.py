"""Clients nobody on the project wrote, with their default settings, against a real
serving process on the real broker: tritonclient[http] (binary tensor data by default),
kserve's InferenceRESTClient (JSON, ``model_name`` in the body), the README's curl
examples as written (form content type), and schemathesis over serving's OpenAPI.

One serving process serves two models published through the registry: ``sea``
(numbers x1..x3, the README's example; v1 champion, v2 challenger) and ``mixed`` (an
integer, a boolean and a category), with their stream configs on the ``streams`` topic.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import signal
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from river import linear_model, preprocessing, tree
from tritonclient.utils import InferenceServerException

from schemas import AliasReason, PredictionRequest, Spec, StreamConfig, Topics
from services.common.kafka_client import ensure_topics, make_admin
from services.common.predictor import Predictor
from services.common.settings import DriftlineSettings
from services.localbroker.ports import free_ports
from services.registry.client import ANY, Registry
from tests.http.schemathesis_cli import schemathesis
from tests.integration.polling import wait_for
from tests.integration.processes import publish
from tests.integration.registry_service import RegistryServices, fresh_database, registry_mode
from tests.integration.serving_support import KEY, serving_env, start_serving

ROOT = Path(__file__).resolve().parents[2]
SEA = Spec.model_validate(
    {
        "features": [
            {"name": f, "type": "number", "min": 0, "max": 10} for f in ("x1", "x2", "x3")
        ],
        "label": {"kind": "class", "classes": [False, True]},
    }
)
MIXED = Spec.model_validate(
    {
        "features": [
            {"name": "n", "type": "number", "min": 0, "max": 100},
            {"name": "flag", "type": "bool"},
            {"name": "color", "type": "category", "categories": ["red", "green", "blue"]},
        ],
        "label": {"kind": "class", "classes": ["hot", "cold"]},
    }
)


def sea_rows(n: int, seed: int) -> list[dict[str, float]]:
    rng = random.Random(seed)
    return [{f: round(rng.uniform(0, 10), 3) for f in ("x1", "x2", "x3")} for _ in range(n)]


def mixed_rows(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        {
            "n": rng.randint(0, 100),
            "flag": rng.random() < 0.5,
            "color": rng.choice(["red", "green", "blue"]),
        }
        for _ in range(n)
    ]


def sea_model(seed: int) -> Predictor:
    model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    for x in sea_rows(300, seed):
        model.learn_one(x, x["x1"] + x["x2"] > 8 + seed % 3)
    config = StreamConfig(stream="sea", version=1, spec=SEA)
    return Predictor.river(model, spec=SEA, spec_sha256=config.spec_sha256())


def mixed_model() -> Predictor:
    model = tree.HoeffdingTreeClassifier(grace_period=20)
    for x in mixed_rows(300, 3):
        model.learn_one(x, "hot" if (x["n"] > 50) ^ x["flag"] else "cold")
    config = StreamConfig(stream="mixed", version=1, spec=MIXED)
    return Predictor.river(model, spec=MIXED, spec_sha256=config.spec_sha256())


@dataclass
class Served:
    port: int
    models: dict[tuple[str, int], Predictor]
    log: Path
    settings: DriftlineSettings

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def registries(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RegistryServices | None]:
    """The module's registry service, as ``DRIFTLINE_TEST_REGISTRY`` asks (None: the
    in-process store); it must exit 0 on SIGTERM at the end."""
    mode = registry_mode()
    if mode is None:
        yield None
        return
    services = RegistryServices(
        tmp_path_factory.mktemp("stock-registry"),
        lambda home: fresh_database(request, mode, home),
    )
    yield services
    failures = services.stop_all()
    if failures:
        pytest.fail("; ".join(failures), pytrace=False)


@pytest.fixture(scope="module")
def served(
    kafka_bootstrap: str,
    tmp_path_factory: pytest.TempPathFactory,
    registries: RegistryServices | None,
) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("stock-clients")
    values: dict[str, Any] = {
        "kafka_bootstrap": kafka_bootstrap,
        "topic_prefix": f"t-{uuid.uuid4().hex[:10]}.",
        "data_dir": tmp,
        "signing_key": KEY,
        "signing_key_id": "k1",
    }
    settings = DriftlineSettings.load(env={}, **values)
    admin = make_admin(settings)
    try:
        ensure_topics(admin, Topics(settings.topic_prefix).all())
    finally:
        admin.close()
    if registries is not None:  # serving and this fixture reach it over HTTP
        settings = DriftlineSettings.load(env={}, **{**values, **registries.start(settings)})
    publish(
        settings,
        "streams",
        [
            StreamConfig(stream="sea", version=1, spec=SEA),
            StreamConfig(stream="mixed", version=1, spec=MIXED),
        ],
    )
    registry = Registry.open(settings)
    models = {("sea", 1): sea_model(1), ("sea", 2): sea_model(2), ("mixed", 1): mixed_model()}
    for (name, _), model in models.items():
        registry.register_version(model=name, kind="batch", predictor=model)
    for name, alias, version in (("sea", "champion", 1), ("sea", "challenger", 2)) + (
        ("mixed", "champion", 1),
    ):
        registry.move_alias(
            model=name,
            alias=alias,
            to_version=version,
            expect=ANY,
            reason=AliasReason.MANUAL,
            actor="test",
        )
    registry.close()
    (port,) = free_ports(1)
    log = tmp / "serving.log"
    env = serving_env(settings, port, DRIFTLINE_SERVING_GROUP_ID=f"g-{uuid.uuid4().hex[:8]}")
    env.pop("DRIFTLINE_SERVING_STRICT_SPEC", None)
    proc = start_serving(env, log)

    def loaded() -> bool:
        try:
            listing = httpx.get(f"http://127.0.0.1:{port}/models", timeout=5).json()
        except httpx.TransportError:
            return False
        have = {
            (m, e["version"]) for m, v in listing["models"].items() for e in v["loaded"].values()
        }
        return set(models) <= have

    try:
        wait_for(loaded, 90, "serving with every version loaded", proc, log)
        yield Served(port=port, models=models, log=log, settings=settings)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- tritonclient[http] ------------------------------------------------------------------


def triton_input(name: str, values: list[Any], datatype: str) -> triton.InferInput:
    dtype = {"FP32": np.float32, "INT64": np.int64, "BOOL": np.bool_, "BYTES": np.object_}[datatype]
    if datatype == "BYTES":
        array = np.array([v.encode() for v in values], dtype=np.object_)
    else:
        array = np.array(values, dtype=dtype)
    tensor = triton.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array)  # default: binary_data=True
    return tensor


def test_tritonclient_with_its_defaults(served: Served) -> None:
    client = triton.InferenceServerClient(f"127.0.0.1:{served.port}")
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("sea") and client.is_model_ready("mixed")
        assert client.is_model_ready("sea", "2")  # loaded as challenger
        assert not client.is_model_ready("sea", "7")
        meta = client.get_model_metadata("sea")
        assert meta["versions"] == ["1"] and [i["name"] for i in meta["inputs"]] == [
            "x1",
            "x2",
            "x3",
        ]
        assert "binary_tensor_data" in client.get_server_metadata()["extensions"]

        for n in (1, 64):  # FP32, batch of 1 and of 64
            rows = sea_rows(n, seed=n)
            inputs = [triton_input(f, [r[f] for r in rows], "FP32") for f in ("x1", "x2", "x3")]
            result = client.infer("sea", inputs)
            as32 = [{f: float(np.float32(r[f])) for f in r} for r in rows]
            assert result.as_numpy("prediction").tolist() == served.models[("sea", 1)].predict_many(
                as32
            )
            assert result.as_numpy("probabilities").shape == (n, 2)
            assert result.get_response()["model_version"] == "1"

        rows = mixed_rows(64, seed=9)  # INT64, BOOL and BYTES
        inputs = [
            triton_input("n", [r["n"] for r in rows], "INT64"),
            triton_input("flag", [r["flag"] for r in rows], "BOOL"),
            triton_input("color", [r["color"] for r in rows], "BYTES"),
        ]
        result = client.infer("mixed", inputs)
        got = [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("prediction")]
        assert got == served.models[("mixed", 1)].predict_many(rows)

        rows = sea_rows(3, seed=5)  # pinned to the challenger's version
        inputs = [triton_input(f, [r[f] for r in rows], "FP32") for f in ("x1", "x2", "x3")]
        pinned = client.infer("sea", inputs, model_version="2")
        assert pinned.get_response()["model_version"] == "2"

        with pytest.raises(InferenceServerException) as unknown:
            client.infer("nope", inputs)
        assert unknown.value.status() == "404" and "nope" in unknown.value.message()
        response = pinned.get_response()
        assert all(isinstance(v, str | int | float | bool) for v in response["parameters"].values())
    finally:
        client.close()


# -- kserve's REST client -----------------------------------------------------------------


def test_kserve_rest_client(served: Served) -> None:
    async def run() -> None:
        client = InferenceRESTClient(RESTConfig(protocol="v2"))
        try:
            assert await client.is_server_live(served.url) is True
            assert await client.is_server_ready(served.url) is True
            assert await client.is_model_ready(served.url, "sea") is True
            rows = sea_rows(64, seed=11)
            request = InferRequest(
                model_name="sea",
                infer_inputs=[
                    InferInput(name=f, shape=[64], datatype="FP64", data=[r[f] for r in rows])
                    for f in ("x1", "x2", "x3")
                ],
            )
            answer = await client.infer(served.url, request, model_name="sea")
            assert answer.model_name == "sea" and answer.parameters["version"] == 1
            prediction = next(o for o in answer.outputs if o.name == "prediction")
            assert prediction.data == served.models[("sea", 1)].predict_many(rows)

            mixed = mixed_rows(1, seed=2)  # numpy inputs go as binary tensor data
            inputs = []
            for name, datatype, array in (
                ("n", "INT64", np.array([mixed[0]["n"]], dtype=np.int64)),
                ("flag", "BOOL", np.array([mixed[0]["flag"]], dtype=np.bool_)),
                ("color", "BYTES", np.array([mixed[0]["color"].encode()], dtype=np.object_)),
            ):
                tensor = InferInput(name=name, shape=[1], datatype=datatype)
                tensor.set_data_from_numpy(array)
                inputs.append(tensor)
            binary = await client.infer(
                served.url, InferRequest(model_name="mixed", infer_inputs=inputs), "mixed"
            )
            label = next(o for o in binary.outputs if o.name == "prediction").data
            assert label == served.models[("mixed", 1)].predict_many(mixed)

            with pytest.raises(httpx.HTTPStatusError) as unknown:
                await client.infer(
                    served.url, InferRequest(model_name="nope", infer_inputs=inputs), "nope"
                )
            assert unknown.value.response.status_code == 404
            assert "nope" in str(unknown.value)
        finally:
            await client.close()

    asyncio.run(run())


# -- the README's curl examples, as written ---------------------------------------------


def readme_curls() -> list[str]:
    """The curl commands of the README's Serving section, in order."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Serving", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block is not None, "the README's Serving section has no bash block"
    commands = re.split(r"\n(?=curl )", block.group(1).strip())
    assert commands and all(c.startswith("curl ") for c in commands), commands
    return commands


def test_readme_curl_examples_run_as_written(served: Served) -> None:
    commands = readme_curls()
    assert len(commands) >= 2
    for command in commands:
        # only the host's port differs from the README
        done = subprocess.run(
            ["bash", "-c", command.replace("localhost:8400", f"localhost:{served.port}")],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        answer = json.loads(done.stdout)
        assert "error" not in answer, (command, answer)
        version = answer.get("version", answer.get("model_version"))
        assert str(version) == "1", answer


# -- out-of-spec inputs are flagged ------------------------------------------------------


def test_out_of_spec_values_are_flagged_and_counted(served: Served) -> None:
    rows = [{"x1": 50.0, "x2": 1.0, "x3": 1.0}, {"x1": 1.0, "x2": 2.0, "x3": 3.0}]
    body = {
        "inputs": [
            {"name": f, "shape": [2], "datatype": "FP64", "data": [r[f] for r in rows]}
            for f in ("x1", "x2", "x3")
        ]
    }
    answer = httpx.post(f"{served.url}/v2/models/sea/infer", json=body, timeout=10).json()
    params = answer["parameters"]
    assert (params["out_of_spec"], params["out_of_spec_rows"]) == ("x1", 1), params
    color = {"n": 5, "flag": True, "color": "purple"}
    plain = httpx.post(
        f"{served.url}/models/mixed/predict", json={"instances": [color]}, timeout=10
    ).json()
    assert plain["out_of_spec"] == {"color": 1}
    metrics = httpx.get(f"{served.url}/metrics", timeout=10).text
    assert 'driftline_serving_out_of_spec_total{feature="x1",model="sea"}' in metrics
    assert 'driftline_serving_out_of_spec_total{feature="color",model="mixed"}' in metrics


def test_out_of_spec_values_on_the_kafka_path_are_counted(served: Served) -> None:
    request = PredictionRequest(
        stream="mixed", example_id="k1", features={"n": 500, "flag": False, "color": "red"}
    )
    publish(served.settings, "predictions.requests", [request])

    def counted() -> bool:
        metrics = httpx.get(f"{served.url}/metrics", timeout=10).text
        return 'driftline_serving_out_of_spec_total{feature="n",model="mixed"} 1.0' in metrics

    wait_for(counted, 60, "the out-of-spec count of the Kafka path")


# -- schemathesis over serving's OpenAPI -------------------------------------------------


@pytest.mark.timeout(600)
def test_schemathesis_finds_nothing_in_serving(served: Served, tmp_path: Path) -> None:
    config = Path(__file__).parents[1] / "http" / "serving.toml"
    schemathesis(served.url, report=tmp_path / "report", config=config)
