"""Per-tenant limits (concurrent jobs -> 429, stored bytes -> 403) and Idempotency-Key."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from audiomixer.store import keys
from audiomixer.store.models import Mix, Project, Sound

AUDIO = b"RIFF" + b"\x01" * 400


def _upload(
    client: TestClient, tenant: Any, data: bytes = AUDIO, key: str | None = None, name: str = "x"
) -> Any:
    headers = dict(tenant.headers)
    if key:
        headers["Idempotency-Key"] = key
    return client.post(
        "/api/v1/upload/base-track",
        files={"file": ("a.wav", data, "audio/wav")},
        data={"project_name": name},
        headers=headers,
    )


def test_concurrent_jobs_limit_is_429_with_retry_after(
    client: TestClient, tenant_a: Any, tenant_b: Any, make_project: Any, configure: Any
) -> None:
    configure(max_concurrent_jobs=2)
    make_project(tenant_a, status="queued", stems={})
    make_project(tenant_a, status="separating", stems={})
    make_project(tenant_a, status="ready")  # finished jobs do not count
    make_project(tenant_a, status="failed", stems={})
    response = _upload(client, tenant_a)
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limited"
    assert int(response.headers["retry-after"]) > 0
    presign = client.post(
        "/api/v1/uploads",
        json={"filename": "a.wav", "content_type": "audio/wav", "size": 10},
        headers=tenant_a.headers,
    )
    assert presign.status_code == 429
    assert len(list(Project.query("tenant-a"))) == 4
    # Another tenant has its own allowance.
    assert _upload(client, tenant_b).status_code == 202


def test_running_mixes_count_as_jobs(
    client: TestClient, tenant_a: Any, make_project: Any, make_mix: Any, configure: Any
) -> None:
    configure(max_concurrent_jobs=2)
    project = make_project(tenant_a, status="ready")
    make_mix(tenant_a, project.project_id, status="rendering")
    make_mix(tenant_a, project.project_id, status="completed")
    assert (
        client.post(
            "/api/v1/mix", json={"project_id": project.project_id}, headers=tenant_a.headers
        ).status_code
        == 202
    )
    response = client.post("/api/v1/mix", json={"project_id": project.project_id}, headers=tenant_a.headers)
    assert response.status_code == 429
    assert "Retry-After" in response.headers


def test_style_sounds_are_not_limited_by_job_count(
    client: TestClient, tenant_a: Any, make_project: Any, configure: Any
) -> None:
    configure(max_concurrent_jobs=1)
    make_project(tenant_a, status="queued", stems={})
    response = client.post(
        "/api/v1/upload/style-sound",
        files=[("files", ("k.wav", AUDIO, "audio/wav"))],
        headers=tenant_a.headers,
    )
    assert response.status_code == 202


def test_storage_quota_is_403(
    client: TestClient, tenant_a: Any, make_project: Any, make_sound: Any, configure: Any
) -> None:
    configure(max_stored_bytes=2000)
    make_project(tenant_a, status="ready", size_bytes=1000)
    make_sound(tenant_a, size_bytes=500)
    over = _upload(client, tenant_a, data=b"x" * 501)
    assert over.status_code == 403
    error = over.json()["error"]
    assert error["code"] == "quota_exceeded"
    assert "2000" in error["message"] and "delete" in error["message"]
    presign = client.post(
        "/api/v1/uploads",
        json={"filename": "a.wav", "content_type": "audio/wav", "size": 501, "kind": "style-sound"},
        headers=tenant_a.headers,
    )
    assert presign.status_code == 403
    sounds = client.post(
        "/api/v1/upload/style-sound",
        files=[("files", ("k.wav", b"y" * 501, "audio/wav"))],
        headers=tenant_a.headers,
    )
    assert sounds.status_code == 403
    assert _upload(client, tenant_a, data=b"x" * 500).status_code == 202  # exactly fills the quota


def test_mix_refused_when_already_over_quota(
    client: TestClient, tenant_a: Any, make_project: Any, configure: Any
) -> None:
    configure(max_stored_bytes=100)
    project = make_project(tenant_a, status="ready", size_bytes=5000)
    response = client.post("/api/v1/mix", json={"project_id": project.project_id}, headers=tenant_a.headers)
    assert response.status_code == 403
    assert list(Mix.query("tenant-a")) == []


def test_idempotent_upload_returns_first_response_and_creates_once(
    client: TestClient, tenant_a: Any, bucket_keys: Any
) -> None:
    first = _upload(client, tenant_a, key="upload-1")
    second = _upload(client, tenant_a, key="upload-1")
    assert first.status_code == second.status_code == 202
    assert second.json() == first.json()
    assert second.headers.get("idempotent-replayed") == "true"
    assert "idempotent-replayed" not in first.headers
    assert [p.project_id for p in Project.query("tenant-a")] == [first.json()["project_id"]]
    assert len(bucket_keys("uploads/")) == 1
    third = _upload(client, tenant_a, key="upload-2")
    assert third.json()["project_id"] != first.json()["project_id"]


def test_idempotency_key_is_scoped_to_the_tenant(client: TestClient, tenant_a: Any, tenant_b: Any) -> None:
    a = _upload(client, tenant_a, key="shared-key")
    b = _upload(client, tenant_b, key="shared-key")
    assert a.status_code == b.status_code == 202
    assert a.json()["project_id"] != b.json()["project_id"]
    assert len(list(Project.query("tenant-b"))) == 1


def test_idempotency_key_reused_with_another_body_is_422(client: TestClient, tenant_a: Any) -> None:
    assert _upload(client, tenant_a, key="k1", name="one").status_code == 202
    response = _upload(client, tenant_a, key="k1", name="two")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert len(list(Project.query("tenant-a"))) == 1


def test_idempotent_replay_is_not_refused_by_the_job_limit(
    client: TestClient, tenant_a: Any, configure: Any
) -> None:
    configure(max_concurrent_jobs=1)
    first = _upload(client, tenant_a, key="once")
    assert first.status_code == 202
    replay = _upload(client, tenant_a, key="once")
    assert (replay.status_code, replay.json()) == (202, first.json())
    assert _upload(client, tenant_a, key="another").status_code == 429


def test_idempotent_mix_queues_once(
    client: TestClient, tenant_a: Any, make_project: Any, render_messages: Any
) -> None:
    project = make_project(tenant_a, status="ready")
    headers = {**tenant_a.headers, "Idempotency-Key": "mix-1"}
    first = client.post("/api/v1/mix", json={"project_id": project.project_id}, headers=headers)
    second = client.post("/api/v1/mix", json={"project_id": project.project_id}, headers=headers)
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json()
    assert len(list(Mix.query("tenant-a"))) == 1
    assert len(render_messages()) == 1


def test_failed_request_is_not_remembered(client: TestClient, tenant_a: Any, make_project: Any) -> None:
    # Stems already stored, analysis still running: the mix is refused until the project is ready.
    project = make_project(tenant_a, status="analysing", stems=dict.fromkeys(keys.STEMS, True))
    headers = {**tenant_a.headers, "Idempotency-Key": "retry-me"}
    assert (
        client.post("/api/v1/mix", json={"project_id": project.project_id}, headers=headers).status_code
        == 409
    )
    project.update(actions=[Project.status.set("ready")])
    retried = client.post("/api/v1/mix", json={"project_id": project.project_id}, headers=headers)
    assert retried.status_code == 202
    assert "idempotent-replayed" not in retried.headers


def test_idempotent_presign_and_style_sounds(client: TestClient, tenant_a: Any) -> None:
    body = {"filename": "a.wav", "content_type": "audio/wav", "size": 10, "kind": "style-sound"}
    headers = {**tenant_a.headers, "Idempotency-Key": "presign-1"}
    first = client.post("/api/v1/uploads", json=body, headers=headers)
    second = client.post("/api/v1/uploads", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
    assert first.json()["upload"]["fields"]["key"] == keys.upload(
        "tenant-a", "style-sound", first.json()["id"]
    )
    files = [("files", ("k.wav", AUDIO, "audio/wav"))]
    headers = {**tenant_a.headers, "Idempotency-Key": "sounds-1"}
    s1 = client.post("/api/v1/upload/style-sound", files=files, headers=headers)
    s2 = client.post("/api/v1/upload/style-sound", files=files, headers=headers)
    assert s1.json() == s2.json()
    assert len(list(Sound.query("tenant-a"))) == 2  # one from the presign, one from the multipart upload


def test_idempotency_key_length_is_validated(client: TestClient, tenant_a: Any) -> None:
    response = _upload(client, tenant_a, key="k" * 256)
    assert response.status_code == 422
    assert "Idempotency-Key" in response.json()["error"]["message"]


def test_same_key_while_the_first_request_runs_is_409(api_env: Any) -> None:
    from starlette.requests import Request

    from audiomixer.api import errors, idempotency

    scope = {"type": "http", "method": "POST", "path": "/api/v1/mix", "headers": [], "query_string": b""}
    request = Request(scope)
    seen: list[int] = []

    def outer() -> tuple[int, dict[str, Any]]:
        try:
            idempotency.run(request, "tenant-a", "busy", "fp", lambda: (202, {"inner": True}))
        except errors.ApiError as exc:
            seen.append(exc.status)
        return 202, {"outer": True}

    response = idempotency.run(request, "tenant-a", "busy", "fp", outer)
    assert response.status_code == 202
    assert seen == [409]
