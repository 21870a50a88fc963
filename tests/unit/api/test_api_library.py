"""The style-sound library: list, details, delete, isolation."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from pynamodb.exceptions import DoesNotExist

from audiomixer import aws
from audiomixer.settings import get_settings
from audiomixer.store import blobs, keys
from audiomixer.store.models import Sound


def put_object(key: str, body: bytes, content_type: str) -> None:
    blobs.write(aws.client("s3"), get_settings().bucket, key, body, content_type)


def test_library_details_with_analysis_summary(client: TestClient, tenant_a: Any, make_sound: Any) -> None:
    summary = {"grains": 120, "centroid_hz": {"mean": 2100.0}}
    sound = make_sound(tenant_a, status="ready", analysis=summary, duration_s=2.25)
    response = client.get(f"/api/v1/library/{sound.sound_id}", headers=tenant_a.headers)
    assert response.status_code == 200
    body = response.json()
    assert body["sound_id"] == sound.sound_id
    assert body["status"] == "ready"
    assert body["duration_s"] == 2.25
    assert body["analysis"] == summary
    assert body["error"] is None


def test_failed_sound_reports_reason(client: TestClient, tenant_a: Any, make_sound: Any) -> None:
    sound = make_sound(tenant_a, status="failed", failure_reason="too long: 300 s > 120 s")
    body = client.get(f"/api/v1/library/{sound.sound_id}", headers=tenant_a.headers).json()
    assert body["error"] == "too long: 300 s > 120 s"


def test_library_list_paginates(client: TestClient, tenant_a: Any, make_sound: Any) -> None:
    made = {make_sound(tenant_a, name=f"s{i}").sound_id for i in range(3)}
    first = client.get("/api/v1/library", params={"limit": 2}, headers=tenant_a.headers).json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    second = client.get(
        "/api/v1/library", params={"limit": 2, "cursor": first["next_cursor"]}, headers=tenant_a.headers
    ).json()
    assert len(second["items"]) == 1 and second["next_cursor"] is None
    assert {i["sound_id"] for i in first["items"] + second["items"]} == made


def test_library_bad_cursor_is_400(client: TestClient, tenant_a: Any) -> None:
    response = client.get("/api/v1/library", params={"cursor": "%%%"}, headers=tenant_a.headers)
    assert response.status_code == 400


def test_library_isolation(client: TestClient, tenant_a: Any, tenant_b: Any, make_sound: Any) -> None:
    sound = make_sound(tenant_a)
    assert client.get(f"/api/v1/library/{sound.sound_id}", headers=tenant_b.headers).status_code == 404
    assert client.delete(f"/api/v1/library/{sound.sound_id}", headers=tenant_b.headers).status_code == 404
    assert client.get("/api/v1/library", headers=tenant_b.headers).json()["items"] == []
    Sound.get("tenant-a", sound.sound_id)


@pytest.mark.parametrize("bad_id", ["x", "0" * 32, "A" * 32])
def test_library_unknown_or_malformed_is_404(client: TestClient, tenant_a: Any, bad_id: str) -> None:
    assert client.get(f"/api/v1/library/{bad_id}", headers=tenant_a.headers).status_code == 404
    assert client.delete(f"/api/v1/library/{bad_id}", headers=tenant_a.headers).status_code == 404


def test_library_delete_removes_row_and_objects(
    client: TestClient, tenant_a: Any, make_sound: Any, bucket_keys: Any
) -> None:
    sound = make_sound(tenant_a)
    other = make_sound(tenant_a)
    sid = sound.sound_id
    put_object(keys.sound_audio("tenant-a", sid), b"audio", "audio/flac")
    put_object(keys.sound_analysis("tenant-a", sid), b"{}", "application/json")
    put_object(keys.upload("tenant-a", "style-sound", sid), b"raw", "audio/wav")
    put_object(keys.sound_audio("tenant-a", other.sound_id), b"audio", "audio/flac")

    response = client.delete(f"/api/v1/library/{sid}", headers=tenant_a.headers)
    assert response.status_code == 204
    with pytest.raises(DoesNotExist):
        Sound.get("tenant-a", sid)
    assert [k for k in bucket_keys("") if sid in k] == []
    assert bucket_keys(keys.sound_prefix("tenant-a", other.sound_id)) == [
        keys.sound_audio("tenant-a", other.sound_id)
    ]
