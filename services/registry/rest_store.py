"""The REST store: the registry service's HTTP API behind the store interface.

Chosen when ``DRIFTLINE_REGISTRY_URL`` is ``http(s)://``. Requests carry
``DRIFTLINE_SERVICE_TOKEN`` (freezing carries ``DRIFTLINE_ADMIN_TOKEN``).
Artifact and checkpoint bytes are uploaded first (``PUT /uploads/{sha256}``, streamed by
the server to disk with its own size limit), then referenced by their sha256, so no
service needs the registry's volume.

A registry that does not answer (connection refused, a timeout, 502/503/504) is retried
with exponential backoff for ``DRIFTLINE_REGISTRY_RETRY_S``, then the call raises
:class:`~services.registry.errors.RegistryUnavailable`. Every request is safe to send
twice (see :mod:`services.registry.store_api`): a registration always carries an
idempotency key (a fresh one when the caller gave none) and a move its ``move_id``.

>>> store = RestStore("http://127.0.0.1:9", topics=Topics("t."), retry_s=0, timeout_s=1)
>>> store.get_model(name="sea")
Traceback (most recent call last):
...
services.registry.errors.RegistryUnavailable: the registry at http://127.0.0.1:9 ...
>>> store.close()
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx

from schemas import AliasReason, StreamConfig, Topics
from services.common.settings import DriftlineSettings
from services.registry.backend import CheckpointBlob, describe_expect, expect_text
from services.registry.domain import (
    AliasMove,
    GcReport,
    ModelInfo,
    ModelVersion,
    SpecVersion,
    StoredCheckpoint,
    TrainingRun,
    VersionDraft,
)
from services.registry.errors import (
    AliasConflict,
    FrozenModel,
    NotFound,
    RegistryError,
    RegistryUnavailable,
    SpecConflict,
)

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({502, 503, 504})
BODY_BYTES = 256 * 1024  # a list sent in requests of this size: a quarter of the
# service's default body limit
BACKOFF_S = (0.1, 2.0)  # first and longest pause between attempts


def _q(segment: str) -> str:
    return quote(segment, safe="")


class RestStore:
    """The registry store over HTTP (see the module docstring).

    Parameters
    ----------
    url
        The registry service's base URL.
    topics
        Topic names under the configured prefix.
    service_token, admin_token
        Bearer tokens: the first for every request (the second when there is none),
        the admin token for freezing.
    timeout_s
        How long one request waits.
    retry_s
        How long an unreachable registry is retried before RegistryUnavailable.
    transport
        An httpx transport (tests: an ASGI app in this process).
    """

    def __init__(
        self,
        url: str,
        *,
        topics: Topics,
        service_token: str | None = None,
        admin_token: str | None = None,
        timeout_s: float = 60.0,
        retry_s: float = 5.0,
        transport: httpx.BaseTransport | None = None,
        list_body_bytes: int = BODY_BYTES,
    ) -> None:
        httpx_log = logging.getLogger("httpx")
        if httpx_log.level == logging.NOTSET:  # one INFO line per request is not news here
            httpx_log.setLevel(logging.WARNING)
        self.url = url.rstrip("/")
        self.topics = topics
        self.retry_s = retry_s
        self.list_body_bytes = list_body_bytes
        token = service_token or admin_token
        self._admin = {"Authorization": f"Bearer {admin_token}"} if admin_token else {}
        self._client = httpx.Client(
            base_url=self.url,
            timeout=timeout_s,
            headers={"Authorization": f"Bearer {token}"} if token else {},
            transport=transport,
        )

    @classmethod
    def from_settings(cls, settings: DriftlineSettings) -> RestStore:
        """The store of ``DRIFTLINE_REGISTRY_URL`` and the tokens of ``settings``."""
        url = settings.registry_url or ""
        return cls(
            url,
            topics=Topics(settings.topic_prefix),
            service_token=_secret(settings.service_token),
            admin_token=_secret(settings.admin_token),
            timeout_s=settings.registry_timeout_s,
            retry_s=settings.registry_retry_s,
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    # -- transport --------------------------------------------------------------------

    def _send(
        self, method: str, path: str, *, admin: bool = False, missing_ok: bool = False, **kw: Any
    ) -> httpx.Response | None:
        """One call, retried while the registry does not answer; None on a 404 when
        ``missing_ok``; registry errors raised as the in-process store raises them."""
        headers = {**kw.pop("headers", {}), **(self._admin if admin else {})} or None
        deadline = time.monotonic() + self.retry_s
        pause = BACKOFF_S[0]
        while True:
            problem: str
            try:
                response = self._client.request(method, path, headers=headers, **kw)
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code not in RETRY_STATUS:
                    break
                problem = f"HTTP {response.status_code}: {_detail(response)}"
            if time.monotonic() + pause > deadline:
                raise RegistryUnavailable(
                    f"the registry at {self.url} did not answer {method} {path} "
                    f"(retried for {self.retry_s:g}s): {problem}"
                )
            time.sleep(pause * random.uniform(0.5, 1.0))  # noqa: S311 - jitter, not crypto
            pause = min(pause * 2, BACKOFF_S[1])
        if response.is_success:
            return response
        if response.status_code == 404 and missing_ok:
            return None
        raise _error(response)

    def _json(self, method: str, path: str, **kw: Any) -> Any:
        response = self._send(method, path, **kw)
        return None if response is None else response.json()

    def _upload(self, data: bytes) -> str:
        """Put ``data`` on the registry (content-addressed, so a retry is harmless)."""
        sha256 = hashlib.sha256(data).hexdigest()
        self._send(
            "PUT",
            f"/uploads/{sha256}",
            content=data,
            headers={**self._client.headers, "Content-Type": "application/octet-stream"},
        )
        return sha256

    # -- the outbox (the registry service relays it) ----------------------------------

    def relay(self) -> int:
        """Nothing to do here: the registry service relays its own outbox."""
        return 0

    def publish_outbox(self, producer: Any) -> int:
        """Nothing to do here: the registry service relays its own outbox."""
        return 0

    def outbox_backlog(self) -> int:
        """The backlog the service reports in ``GET /healthz``."""
        return int(self._json("GET", "/healthz")["outbox_backlog"])

    # -- streams ----------------------------------------------------------------------

    def record_specs(self, *, configs: Sequence[StreamConfig]) -> list[SpecVersion]:
        """Record config versions, in requests of at most ``list_body_bytes`` each
        (the service refuses a body over its limit, 1 MiB by default): recording is
        idempotent, so a run cut between two requests is completed by running it again."""
        recorded: list[SpecVersion] = []
        for chunk in _chunks([c.model_dump(mode="json") for c in configs], self.list_body_bytes):
            found = self._json("POST", "/specs", json={"configs": chunk})
            recorded.extend(SpecVersion.model_validate(s) for s in found)
        return recorded

    def get_spec(self, *, stream: str, version: int | None = None) -> SpecVersion | None:
        params = {"version": version} if version is not None else {}
        found = self._json("GET", f"/specs/{_q(stream)}", params=params, missing_ok=True)
        return None if found is None else SpecVersion.model_validate(found)

    def spec_by_sha256(self, *, spec_sha256: str) -> SpecVersion | None:
        found = self._json("GET", f"/specs/by-spec-sha256/{_q(spec_sha256)}", missing_ok=True)
        return None if found is None else SpecVersion.model_validate(found)

    # -- versions ---------------------------------------------------------------------

    def version_by_key(self, *, idempotency_key: str) -> ModelVersion | None:
        found = self._json(
            "GET", "/versions/by-key", params={"key": idempotency_key}, missing_ok=True
        )
        return None if found is None else ModelVersion.model_validate(found)

    def register_version(self, *, model: str, draft: VersionDraft, data: bytes) -> ModelVersion:
        if draft.idempotency_key is None:  # so that a retried request registers once
            draft = draft.model_copy(update={"idempotency_key": f"rest:{uuid.uuid4()}"})
        sha256 = self._upload(data)
        body = {**draft.model_dump(mode="json"), "sha256": sha256}
        return ModelVersion.model_validate(
            self._json("POST", f"/models/{_q(model)}/register", json=body)
        )

    def get_version(self, *, model: str, version: int) -> ModelVersion | None:
        found = self._json("GET", f"/models/{_q(model)}/versions/{version}", missing_ok=True)
        return None if found is None else ModelVersion.model_validate(found)

    def list_versions(self, *, model: str, limit: int = 100) -> list[ModelVersion]:
        found = self._json(
            "GET", f"/models/{_q(model)}/versions", params={"limit": limit}, missing_ok=True
        )
        return [ModelVersion.model_validate(v) for v in found or []]

    def get_model(self, *, name: str) -> ModelInfo | None:
        found = self._json("GET", f"/models/{_q(name)}", missing_ok=True)
        return None if found is None else ModelInfo.model_validate(found)

    def list_models(self) -> list[ModelInfo]:
        return [ModelInfo.model_validate(m) for m in self._json("GET", "/models")]

    def versions_by_sha256(self, *, sha256: str) -> list[ModelVersion]:
        found = self._json("GET", f"/versions/by-sha256/{_q(sha256)}")
        return [ModelVersion.model_validate(v) for v in found]

    def artifact_bytes(self, *, sha256: str) -> bytes:
        response = self._send("GET", f"/blobs/{_q(sha256)}")
        assert response is not None  # noqa: S101 - missing_ok is off
        return response.content

    # -- aliases ----------------------------------------------------------------------

    def get_alias(self, *, model: str, alias: str) -> int | None:
        info = self.get_model(name=model)
        return None if info is None else info.aliases.get(alias)

    def move_alias(
        self,
        *,
        model: str,
        alias: str,
        to_version: int | None,
        expect: Any,
        reason: AliasReason,
        actor: str,
        evidence: dict[str, Any],
        move_id: str | None = None,
    ) -> AliasMove:
        body = {
            "to_version": to_version,
            "expect": describe_expect(expect),
            "reason": reason.value,
            "actor": actor,
            "evidence": evidence,
            "move_id": move_id or str(uuid.uuid4()),
        }
        path = f"/models/{_q(model)}/aliases/{_q(alias)}/moves"
        try:
            return AliasMove.model_validate(self._json("POST", path, json=body))
        except AliasConflict as exc:
            raise AliasConflict(model, alias, expect_text(expect), exc.actual) from None

    def alias_history(
        self, *, model: str, alias: str | None = None, limit: int = 100
    ) -> list[AliasMove]:
        if alias is None:
            info = self.get_model(name=model)
            aliases = sorted(info.aliases) if info is not None else []
        else:
            aliases = [alias]
        moves: list[AliasMove] = []
        for name in aliases:
            found = self._json(
                "GET",
                f"/models/{_q(model)}/aliases/{_q(name)}/history",
                params={"limit": limit},
                missing_ok=True,
            )
            moves += [AliasMove.model_validate(m) for m in found or []]
        moves.sort(key=lambda m: m.moved_at, reverse=True)
        return moves[:limit]

    def freeze(self, *, model: str, frozen: bool, reason: str | None) -> ModelInfo:
        verb = "freeze" if frozen else "unfreeze"
        found = self._json(
            "POST", f"/models/{_q(model)}/{verb}", json={"reason": reason}, admin=True
        )
        return ModelInfo.model_validate(found)

    # -- checkpoints ------------------------------------------------------------------

    def save_checkpoints(self, *, owner: str, items: Sequence[CheckpointBlob]) -> list[str]:
        uploads = [
            {"key": i.key, "sha256": self._upload(i.blob), "offsets": i.offsets, "meta": i.meta}
            for i in items
        ]
        # each stream's checkpoint stands alone (restore takes the newest per stream), so
        # a learner with thousands of streams saves them in requests under the body limit
        shas: list[str] = []
        for chunk in _chunks(uploads, self.list_body_bytes):
            found = self._json("POST", f"/checkpoints/{_q(owner)}/save", json={"items": chunk})
            shas.extend(str(s) for s in found)
        return shas

    def checkpoints(self, *, owner: str, key: str, limit: int = 10) -> list[StoredCheckpoint]:
        found = self._json("GET", f"/checkpoints/{_q(owner)}", params={"key": key, "limit": limit})
        return [StoredCheckpoint.model_validate(c) for c in found]

    def latest_checkpoints(self, *, owner: str, prefix: str) -> list[StoredCheckpoint]:
        found = self._json("GET", f"/checkpoints/{_q(owner)}/latest", params={"prefix": prefix})
        return [StoredCheckpoint.model_validate(c) for c in found]

    def checkpoint_blob(self, *, owner: str, checkpoint_id: int) -> bytes:
        response = self._send("GET", f"/checkpoints/{_q(owner)}/{checkpoint_id}/blob")
        assert response is not None  # noqa: S101 - missing_ok is off
        return response.content

    # -- training runs ----------------------------------------------------------------

    def start_run(
        self,
        *,
        model: str,
        trigger_event_id: str,
        trigger: dict[str, Any],
        window: dict[str, Any],
    ) -> tuple[TrainingRun, bool]:
        body = {
            "model": model,
            "trigger_event_id": trigger_event_id,
            "trigger": trigger,
            "window": window,
        }
        found = self._json("POST", "/training-runs", json=body)
        return TrainingRun.model_validate(found["run"]), bool(found["created"])

    def add_candidate(
        self,
        *,
        run_id: str,
        name: str,
        params: dict[str, Any],
        metrics: dict[str, Any],
        fit_s: float,
        version: int | None,
        note: str | None,
    ) -> None:
        body = {
            "name": name,
            "params": params,
            "metrics": metrics,
            "fit_s": fit_s,
            "version": version,
            "note": note,
        }
        self._send("POST", f"/runs/{_q(run_id)}/candidates", json=body)

    def finish_run(self, *, run_id: str, values: dict[str, Any]) -> TrainingRun:
        body = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in values.items()}
        return TrainingRun.model_validate(
            self._json("POST", f"/runs/{_q(run_id)}/finish", json=body)
        )

    def get_run(self, *, run_id: str) -> TrainingRun | None:
        found = self._json("GET", f"/runs/{_q(run_id)}", missing_ok=True)
        return None if found is None else TrainingRun.model_validate(found)

    def list_runs(self, *, model: str | None = None, limit: int = 50) -> list[TrainingRun]:
        params: dict[str, Any] = {"limit": limit}
        if model is not None:
            params["model"] = model
        return [TrainingRun.model_validate(r) for r in self._json("GET", "/runs", params=params)]

    # -- idempotent consumers ---------------------------------------------------------

    def mark_handled(self, *, consumer: str, event_id: str) -> bool:
        found = self._json("POST", f"/handled/{_q(consumer)}/{_q(event_id)}/mark")
        return bool(found["created"])

    def was_handled(self, *, consumer: str, event_id: str) -> bool:
        found = self._json("GET", f"/handled/{_q(consumer)}/{_q(event_id)}")
        return bool(found["handled"])

    # -- retention --------------------------------------------------------------------

    def gc(
        self,
        *,
        keep_versions: int,
        keep_checkpoints: int,
        handled_ttl: timedelta,
        outbox_ttl: timedelta,
        dry_run: bool,
    ) -> GcReport:
        body = {
            "keep_versions": keep_versions,
            "keep_checkpoints": keep_checkpoints,
            "handled_ttl_s": int(handled_ttl.total_seconds()),
            "outbox_ttl_s": int(outbox_ttl.total_seconds()),
            "dry_run": dry_run,
        }
        return GcReport.model_validate(self._json("POST", "/gc", json=body))


def _secret(value: Any) -> str | None:
    return value.get_secret_value() if value is not None else None


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(body, dict):
        for field in ("detail", "error", "message"):
            if field in body:
                value = body[field]
                return value if isinstance(value, str) else str(value)[:300]
    return str(body)[:300]


def _error(response: httpx.Response) -> RegistryError:
    """The registry error an answer stands for."""
    reason = response.headers.get("X-Driftline-Error", "")
    detail = _detail(response)
    status = response.status_code
    if status == 404:
        return NotFound(detail)
    if reason == "alias_conflict":
        body = response.json()
        current = body.get("current_version") if isinstance(body, dict) else None
        return AliasConflict("?", "?", "?", current if isinstance(current, int) else None)
    if reason == "frozen":
        return FrozenModel(detail)
    if reason == "spec_conflict":
        return SpecConflict(detail)
    if status in (401, 403):
        return RegistryError(
            f"the registry refused the request (HTTP {status}: {detail}); "
            "check DRIFTLINE_SERVICE_TOKEN (DRIFTLINE_ADMIN_TOKEN to freeze)"
        )
    return RegistryError(f"the registry answered HTTP {status}: {detail}")


def _chunks(items: list[dict[str, Any]], max_bytes: int) -> Iterator[list[dict[str, Any]]]:
    """``items`` in order, in lists whose JSON stays within about ``max_bytes`` (an item
    larger than that alone in its list).

    >>> [len(c) for c in _chunks([{"a": "x" * 40}] * 5, 100)]
    [2, 2, 1]
    """
    chunk: list[dict[str, Any]] = []
    size = 0
    for item in items:
        n = len(json.dumps(item, separators=(",", ":"))) + 1
        if chunk and size + n > max_bytes:
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += n
    if chunk:
        yield chunk
