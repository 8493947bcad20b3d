"""The SDK subscriber on the real broker: versions and alias moves published by the
registry's outbox, read back from the compacted ``models`` topic."""

from __future__ import annotations

import threading
from collections.abc import Callable

import uvicorn

from services.common.metrics import Metrics
from services.common.settings import DriftlineSettings
from services.common.subscriber import LoadedModel, LoadFailure, ModelSubscriber
from services.localbroker.ports import free_ports
from services.registry.api import create_app
from services.registry.client import Registry
from tests.integration.serving_support import (
    SPEC,
    move,
    register,
    sea_rows,
    signed,
    tamper,
)

TIMEOUT_S = 60.0


def on(version: int, alias: str = "champion") -> Callable[[ModelSubscriber], bool]:
    def check(sub: ModelSubscriber) -> bool:
        found = sub.get("sea", alias)
        return found is not None and found.version == version

    return check


def test_three_versions_restart_and_pin(settings_factory: Callable[..., DriftlineSettings]) -> None:
    settings = signed(settings_factory)
    registry = Registry.open(settings)
    swaps: list[tuple[int, int | None]] = []
    try:
        versions = [register(registry, "sea", seed) for seed in (1, 2, 3)]
        assert versions == [1, 2, 3]
        move(registry, "sea", "champion", 1)
        with ModelSubscriber(
            settings,
            models=["sea"],
            features={"sea": SPEC.features},
            on_swap=lambda new, old: swaps.append((new.version, old and old.version)),
        ) as sub:
            assert sub.wait_until(on(1), TIMEOUT_S)
            move(registry, "sea", "champion", 2)
            assert sub.wait_until(on(2), TIMEOUT_S)
            move(registry, "sea", "champion", 3)
            assert sub.wait_until(on(3), TIMEOUT_S)
            current = sub.current
            assert isinstance(current, LoadedModel)
            assert current.meta.metrics == {"seed": 3.0} and current.alias == "champion"
            rows = [x for x, _ in sea_rows(50, seed=9)]
            expected = registry.load_predictor(model="sea", version=3).predict_many(rows)
            assert current.predictor.predict_many(rows) == expected
            assert sub.aliases("sea") == {"champion": 3} and sorted(sub.versions("sea")) == [
                1,
                2,
                3,
            ]
        assert swaps == [(1, None), (2, 1), (3, 2)]

        # A restart rebuilds the state from the topic and loads only the final version.
        with ModelSubscriber(settings, models=["sea"]) as again:
            assert again.wait_until(lambda s: s.caught_up() and on(3)(s), TIMEOUT_S)
            assert [h.version for h in again.history()] == [3]

        # Pinned: version 2 whatever champion says, also when champion moves.
        with ModelSubscriber(settings, pins={"sea": 2}) as pinned:
            assert pinned.wait_until(on(2), TIMEOUT_S)
            move(registry, "sea", "champion", 1)
            assert pinned.wait_until(lambda s: s.aliases("sea").get("champion") == 1, TIMEOUT_S)
            found = pinned.pinned("sea")
            assert found is not None and found.version == 2 and pinned.get("sea") is found
    finally:
        registry.close()


def test_a_tampered_artifact_never_serves(
    settings_factory: Callable[..., DriftlineSettings],
) -> None:
    settings = signed(settings_factory)
    registry = Registry.open(settings)
    failures: list[LoadFailure] = []
    try:
        register(registry, "sea", 1)
        move(registry, "sea", "champion", 1)
        with ModelSubscriber(settings, on_failure=failures.append) as sub:
            assert sub.wait_until(on(1), TIMEOUT_S)
            bad = register(registry, "sea", 2)
            tamper(registry, "sea", bad)
            move(registry, "sea", "champion", bad)
            assert sub.wait_until(lambda s: bool(failures), TIMEOUT_S)
            assert [(f.version, f.reason) for f in failures] == [(2, "sha256_mismatch")]
            kept = sub.get("sea")
            assert kept is not None and kept.version == 1
            # the next good version is served again
            good = register(registry, "sea", 3)
            move(registry, "sea", "champion", good)
            assert sub.wait_until(on(good), TIMEOUT_S)
        # a fresh subscriber that catches up onto the tampered version loads nothing
        move(registry, "sea", "champion", bad)
        refused: list[LoadFailure] = []
        with ModelSubscriber(settings, on_failure=refused.append) as fresh:
            assert fresh.wait_until(lambda s: bool(refused), TIMEOUT_S)
            assert fresh.get("sea") is None and refused[0].reason == "sha256_mismatch"
    finally:
        registry.close()


def test_an_artifact_from_another_host_comes_from_the_registry_api(
    settings_factory: Callable[..., DriftlineSettings], registry_database: str | None
) -> None:
    """The artifact's file:// URI is not readable here (another host's disk): the
    subscriber downloads it from the registry's ``GET /artifacts/{sha256}`` and verifies it."""
    settings = signed(settings_factory, registry_url=registry_database)  # its own API
    registry = Registry.open(settings)
    try:
        version = register(registry, "sea", 1)
    finally:
        registry.close()
    moved = settings.data_path / "elsewhere"
    (settings.data_path / "artifacts").rename(moved)
    there = settings.model_copy(update={"artifacts_url": moved.as_uri()})
    api_registry = Registry.open(there)
    (port,) = free_ports(1)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(api_registry, admin_token=None, metrics=Metrics("registry")),
            host="127.0.0.1",
            port=port,
            log_config=None,
            lifespan="off",
        )
    )
    thread = threading.Thread(target=server.run)
    thread.start()
    try:
        move(api_registry, "sea", "champion", version)
        remote = settings.model_copy(update={"registry_http_url": f"http://127.0.0.1:{port}"})
        failures: list[LoadFailure] = []
        with ModelSubscriber(remote, on_failure=failures.append) as sub:
            assert sub.wait_until(lambda s: on(version)(s) or bool(failures), TIMEOUT_S)
            assert failures == []
        without = settings  # no registry URL: the failure names the setting
        with ModelSubscriber(without, on_failure=failures.append) as sub:
            assert sub.wait_until(lambda s: bool(failures), TIMEOUT_S)
            assert failures[0].reason == "fetch_failed"
            assert "DRIFTLINE_REGISTRY_HTTP_URL" in failures[0].detail
    finally:
        server.should_exit = True
        thread.join(10)
        api_registry.close()
