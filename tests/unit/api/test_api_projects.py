"""Projects: list with cursors, details, status, stem downloads, delete, tenant isolation."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from fastapi.testclient import TestClient
from pynamodb.exceptions import DoesNotExist

from audiomixer import aws
from audiomixer.api.storage import encode_cursor
from audiomixer.settings import STEMS, get_settings
from audiomixer.store import blobs, keys
from audiomixer.store.keys import new_id
from audiomixer.store.models import Mix, Project


def put_object(key: str, body: bytes, content_type: str) -> None:
    blobs.write(aws.client("s3"), get_settings().bucket, key, body, content_type)


def test_status_shape_of_a_queued_project(client: TestClient, tenant_a: Any, make_project: Any) -> None:
    project = make_project(tenant_a, status="queued", stems={}, progress=0)
    response = client.get(f"/api/v1/projects/{project.project_id}/status", headers=tenant_a.headers)
    assert response.status_code == 200
    assert response.json() == {
        "project_id": project.project_id,
        "status": "queued",
        "progress": 0,
        "stems": {"drums": False, "bass": False, "vocals": False, "other": False},
        "stage": "upload",
        "error": None,
        "message": "Waiting to be processed",
    }


def test_status_of_a_separating_project_reports_progress_and_stems(
    client: TestClient, tenant_a: Any, make_project: Any
) -> None:
    project = make_project(
        tenant_a, status="separating", stage="separate", progress=42, stems={"drums": True, "bass": False}
    )
    body = client.get(f"/api/v1/projects/{project.project_id}/status", headers=tenant_a.headers).json()
    assert (body["status"], body["progress"], body["stage"]) == ("separating", 42, "separate")
    assert body["stems"] == {"drums": True, "bass": False, "vocals": False, "other": False}


def test_status_of_a_failed_project_carries_the_reason(
    client: TestClient, tenant_a: Any, make_project: Any
) -> None:
    project = make_project(
        tenant_a, status="failed", stems={}, stage="ingest", failure_reason="not an audio file"
    )
    body = client.get(f"/api/v1/projects/{project.project_id}/status", headers=tenant_a.headers).json()
    assert body["error"] == "not an audio file"
    assert body["status"] == "failed"
    assert "not an audio file" in body["message"]


def test_details_link_only_ready_stems(client: TestClient, tenant_a: Any, make_project: Any) -> None:
    project = make_project(
        tenant_a, status="analysing", stems={"drums": True, "bass": True, "vocals": False, "other": False}
    )
    response = client.get(f"/api/v1/projects/{project.project_id}", headers=tenant_a.headers)
    assert response.status_code == 200
    body = response.json()
    pid = project.project_id
    assert body["stem_urls"] == {
        "drums": f"/api/v1/projects/{pid}/stems/drums",
        "bass": f"/api/v1/projects/{pid}/stems/bass",
    }
    assert body["name"] == "song"
    assert body["source_kind"] == "song"
    assert body["size_bytes"] == 1000


def test_ready_project_progress_is_100(client: TestClient, tenant_a: Any, make_project: Any) -> None:
    project = make_project(tenant_a, status="ready", progress=97)
    body = client.get(f"/api/v1/projects/{project.project_id}", headers=tenant_a.headers).json()
    assert body["progress"] == 100
    assert set(body["stem_urls"]) == set(STEMS)


def test_stem_download_redirects_to_presigned_get(
    client: TestClient, tenant_a: Any, make_project: Any
) -> None:
    project = make_project(tenant_a, status="ready")
    response = client.get(f"/api/v1/projects/{project.project_id}/stems/vocals", headers=tenant_a.headers)
    assert response.status_code == 307
    location = urlparse(response.headers["location"])
    assert location.path.endswith("/" + keys.stem("tenant-a", project.project_id, "vocals"))
    query = parse_qs(location.query)
    assert "X-Amz-Signature" in query
    assert query["X-Amz-Expires"] == ["300"]
    assert "attachment" in query["response-content-disposition"][0]


def test_stem_download_not_ready_is_404(client: TestClient, tenant_a: Any, make_project: Any) -> None:
    project = make_project(tenant_a, status="separating", stems={"drums": True})
    response = client.get(f"/api/v1/projects/{project.project_id}/stems/bass", headers=tenant_a.headers)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert (
        client.get(f"/api/v1/projects/{project.project_id}/stems/drums", headers=tenant_a.headers).status_code
        == 307
    )


def test_unknown_stem_is_404(client: TestClient, tenant_a: Any, make_project: Any) -> None:
    project = make_project(tenant_a)
    response = client.get(f"/api/v1/projects/{project.project_id}/stems/kazoo", headers=tenant_a.headers)
    assert response.status_code == 404
    assert "kazoo" in response.json()["error"]["message"]


@pytest.mark.parametrize("bad_id", ["nope", "0" * 31, "G" * 32, "..%2F..", "0" * 32])
def test_malformed_or_unknown_id_is_404(client: TestClient, tenant_a: Any, bad_id: str) -> None:
    for path in (f"/api/v1/projects/{bad_id}", f"/api/v1/projects/{bad_id}/status"):
        response = client.get(path, headers=tenant_a.headers)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"
    assert client.delete(f"/api/v1/projects/{bad_id}", headers=tenant_a.headers).status_code == 404


def test_other_tenants_project_is_404_everywhere(
    client: TestClient, tenant_a: Any, tenant_b: Any, make_project: Any, bucket_keys: Any
) -> None:
    project = make_project(tenant_a, status="ready")
    pid = project.project_id
    for method, path in [
        ("GET", f"/api/v1/projects/{pid}"),
        ("GET", f"/api/v1/projects/{pid}/status"),
        ("GET", f"/api/v1/projects/{pid}/stems/drums"),
        ("DELETE", f"/api/v1/projects/{pid}"),
    ]:
        response = client.request(method, path, headers=tenant_b.headers)
        assert response.status_code == 404, (method, path)
    assert client.get("/api/v1/projects", headers=tenant_b.headers).json()["items"] == []
    Project.get("tenant-a", pid)  # still there
    assert len(bucket_keys(keys.project_prefix("tenant-a", pid))) == 4


def test_list_paginates_newest_first_with_cursors(
    client: TestClient, tenant_a: Any, make_project: Any
) -> None:
    made = [make_project(tenant_a, status="queued", stems={}, name=f"p{i}").project_id for i in range(5)]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        response = client.get("/api/v1/projects", params=params, headers=tenant_a.headers)
        assert response.status_code == 200
        body = response.json()
        assert len(body["items"]) <= 2
        seen.extend(item["project_id"] for item in body["items"])
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == sorted(made, reverse=True)
    assert sorted(seen) == sorted(made)


def test_list_default_limit_and_bounds(client: TestClient, tenant_a: Any, make_project: Any) -> None:
    for _ in range(3):
        make_project(tenant_a, status="queued", stems={})
    body = client.get("/api/v1/projects", headers=tenant_a.headers).json()
    assert len(body["items"]) == 3
    assert body["next_cursor"] is None
    for bad in (0, 101, -1):
        response = client.get("/api/v1/projects", params={"limit": bad}, headers=tenant_a.headers)
        assert response.status_code == 422
        assert "limit" in response.json()["error"]["message"]


@pytest.mark.parametrize("cursor", ["!!!", "bm90LWpzb24", encode_cursor("x" * 32), "eyJpZCI6IDF9", "W10"])
def test_bad_cursor_is_400(client: TestClient, tenant_a: Any, cursor: str) -> None:
    response = client.get("/api/v1/projects", params={"cursor": cursor}, headers=tenant_a.headers)
    assert response.status_code == 400
    assert response.json()["error"] == {"code": "bad_request", "message": "invalid cursor"}


def test_another_tenants_cursor_only_pages_your_own_rows(
    client: TestClient, tenant_a: Any, tenant_b: Any, make_project: Any
) -> None:
    a_ids = [make_project(tenant_a, status="queued", stems={}).project_id for _ in range(3)]
    cursor = client.get("/api/v1/projects", params={"limit": 1}, headers=tenant_a.headers).json()[
        "next_cursor"
    ]
    response = client.get("/api/v1/projects", params={"cursor": cursor}, headers=tenant_b.headers)
    assert response.status_code == 200
    assert not set(i["project_id"] for i in response.json()["items"]) & set(a_ids)


def test_delete_removes_row_and_every_object(
    client: TestClient, tenant_a: Any, make_project: Any, bucket_keys: Any
) -> None:
    keep = make_project(tenant_a, status="ready")
    project = make_project(tenant_a, status="ready")
    pid = project.project_id
    put_object(keys.project_source("tenant-a", pid), b"src", "audio/flac")
    put_object(keys.stem_analysis("tenant-a", pid, "drums"), b"{}", "application/json")
    put_object(keys.upload("tenant-a", "base-track", pid), b"raw", "audio/wav")
    put_object(keys.upload("tenant-a", "stem", pid, "bass"), b"raw", "audio/wav")
    assert len(bucket_keys(keys.project_prefix("tenant-a", pid))) == 6
    mix = Mix("tenant-a", new_id(), project_id=pid, status="completed")
    mix.save()
    put_object(keys.mix_output("tenant-a", mix.mix_id, "wav"), b"RIFF", "audio/wav")
    other_mix = Mix("tenant-a", new_id(), project_id=keep.project_id, status="completed")
    other_mix.save()

    response = client.delete(f"/api/v1/projects/{pid}", headers=tenant_a.headers)
    assert response.status_code == 204
    assert response.content == b""
    with pytest.raises(DoesNotExist):
        Project.get("tenant-a", pid)
    assert [k for k in bucket_keys("") if pid in k] == []
    assert bucket_keys(keys.mix_prefix("tenant-a", mix.mix_id)) == []
    assert [m.mix_id for m in Mix.query("tenant-a")] == [other_mix.mix_id]  # the project's mixes go with it
    assert len(bucket_keys(keys.project_prefix("tenant-a", keep.project_id))) == 4
    assert client.get(f"/api/v1/projects/{pid}", headers=tenant_a.headers).status_code == 404
    assert client.delete(f"/api/v1/projects/{pid}", headers=tenant_a.headers).status_code == 404


def test_unknown_route_and_wrong_method_use_the_envelope(client: TestClient, tenant_a: Any) -> None:
    missing = client.get("/api/v1/nothing-here", headers=tenant_a.headers)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    wrong = client.put("/api/v1/projects", headers=tenant_a.headers)
    assert wrong.status_code == 405
    assert wrong.json()["error"]["code"] == "method_not_allowed"


def test_unexpected_failure_is_500_with_internal_code(
    app: Any, tenant_a: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from audiomixer.api import storage

    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("secret detail that must not leak")

    monkeypatch.setattr(storage, "page", broken)
    with TestClient(app, raise_server_exceptions=False) as c:
        response = c.get("/api/v1/projects", headers=tenant_a.headers)
    assert response.status_code == 500
    assert response.json() == {"error": {"code": "internal", "message": "internal error"}}
