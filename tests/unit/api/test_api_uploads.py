"""Uploads: multipart base track, stems and style sounds, and presigned S3 POSTs."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from audiomixer import aws
from audiomixer.settings import get_settings
from audiomixer.store import keys
from audiomixer.store.models import Project, Sound

AUDIO = b"RIFF" + bytes(range(256)) * 8


def _get_object(key: str) -> bytes:
    return bytes(aws.client("s3").get_object(Bucket=get_settings().bucket, Key=key)["Body"].read())


def test_health_needs_no_auth(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_docs_and_schema_need_no_auth(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    assert "/api/v1/mix" in schema["paths"]
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_base_track_upload_writes_row_and_raw_object(
    client: TestClient, tenant_a: Any, bucket_keys: Any
) -> None:
    response = client.post(
        "/api/v1/upload/base-track",
        files={"file": ("../../etc/My Song.wav", AUDIO, "audio/wav")},
        data={"project_name": "  Demo\x00 track  "},
        headers=tenant_a.headers,
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert set(body) == {"project_id", "status", "message"}
    assert body["status"] == "queued"
    pid = body["project_id"]
    assert keys.is_id(pid)
    project = Project.get("tenant-a", pid)
    assert (project.status, project.stage, project.source_kind) == ("queued", "upload", "song")
    assert project.name == "Demo track"
    assert project.size_bytes == len(AUDIO)
    key = keys.upload("tenant-a", "base-track", pid)
    assert bucket_keys("uploads/") == [key]  # the filename never reaches a key
    assert _get_object(key) == AUDIO


def test_base_track_name_falls_back_to_sanitised_filename(client: TestClient, tenant_a: Any) -> None:
    response = client.post(
        "/api/v1/upload/base-track",
        files={"file": ("C:\\music\\..\\Cool   Beat.mp3", AUDIO, "audio/mpeg")},
        headers=tenant_a.headers,
    )
    assert response.status_code == 202
    assert Project.get("tenant-a", response.json()["project_id"]).name == "Cool Beat"


def test_base_track_empty_file_is_400(client: TestClient, tenant_a: Any, bucket_keys: Any) -> None:
    response = client.post(
        "/api/v1/upload/base-track", files={"file": ("a.wav", b"", "audio/wav")}, headers=tenant_a.headers
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"
    assert list(Project.query("tenant-a")) == []
    assert bucket_keys("") == []


def test_base_track_missing_file_is_422(client: TestClient, tenant_a: Any) -> None:
    response = client.post("/api/v1/upload/base-track", data={"project_name": "x"}, headers=tenant_a.headers)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert "file" in error["message"]


def test_base_track_over_multipart_limit_is_413_pointing_to_presigned(
    client: TestClient, tenant_a: Any, configure: Any
) -> None:
    configure(multipart_limit_bytes=1024)
    response = client.post(
        "/api/v1/upload/base-track", files={"file": ("a.wav", AUDIO, "audio/wav")}, headers=tenant_a.headers
    )
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "payload_too_large"
    assert "POST /api/v1/uploads" in error["message"]
    assert list(Project.query("tenant-a")) == []


def test_chunked_body_over_limit_is_413(client: TestClient, tenant_a: Any, configure: Any) -> None:
    configure(multipart_limit_bytes=1024)

    def chunks() -> Any:
        for _ in range(8):
            yield b"x" * 512

    response = client.post(
        "/api/v1/upload/base-track",
        content=chunks(),
        headers={**tenant_a.headers, "Content-Type": "multipart/form-data; boundary=abc"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_stems_upload(client: TestClient, tenant_a: Any, bucket_keys: Any) -> None:
    response = client.post(
        "/api/v1/upload/stems",
        files={"drums": ("d.wav", AUDIO, "audio/wav"), "vocals": ("v.flac", AUDIO[:100], "audio/flac")},
        data={"project_name": "My stems"},
        headers=tenant_a.headers,
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "queued"
    project = Project.get("tenant-a", body["project_id"])
    assert project.source_kind == "stems"
    assert project.stems.as_dict() == {"drums": False, "vocals": False}
    assert project.size_bytes == len(AUDIO) + 100
    assert sorted(bucket_keys("uploads/")) == sorted(
        [keys.upload("tenant-a", "stem", project.project_id, s) for s in ("drums", "vocals")]
    )
    assert _get_object(keys.upload("tenant-a", "stem", project.project_id, "vocals")) == AUDIO[:100]


def test_stems_upload_without_stems_is_400(client: TestClient, tenant_a: Any) -> None:
    response = client.post("/api/v1/upload/stems", data={"project_name": "x"}, headers=tenant_a.headers)
    assert response.status_code == 400
    assert "drums" in response.json()["error"]["message"]


def test_stems_upload_with_empty_stem_is_400(client: TestClient, tenant_a: Any) -> None:
    response = client.post(
        "/api/v1/upload/stems",
        files={"drums": ("d.wav", AUDIO, "audio/wav"), "bass": ("b.wav", b"", "audio/wav")},
        headers=tenant_a.headers,
    )
    assert response.status_code == 400
    assert "bass" in response.json()["error"]["message"]
    assert list(Project.query("tenant-a")) == []


def test_style_sounds_upload_several(client: TestClient, tenant_a: Any, bucket_keys: Any) -> None:
    response = client.post(
        "/api/v1/upload/style-sound",
        files=[
            ("files", ("kick.wav", AUDIO, "audio/wav")),
            ("files", ("snare hit.ogg", AUDIO[:50], "audio/ogg")),
        ],
        headers=tenant_a.headers,
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["count"] == 2
    assert [s["name"] for s in body["sounds"]] == ["kick", "snare hit"]
    assert all(s["status"] == "queued" for s in body["sounds"])
    ids = [s["sound_id"] for s in body["sounds"]]
    assert sorted(bucket_keys("uploads/")) == sorted(keys.upload("tenant-a", "style-sound", i) for i in ids)
    assert Sound.get("tenant-a", ids[1]).size_bytes == 50


def test_style_sounds_one_empty_file_rejects_all(client: TestClient, tenant_a: Any, bucket_keys: Any) -> None:
    response = client.post(
        "/api/v1/upload/style-sound",
        files=[("files", ("kick.wav", AUDIO, "audio/wav")), ("files", ("empty.wav", b"", "audio/wav"))],
        headers=tenant_a.headers,
    )
    assert response.status_code == 400
    assert list(Sound.query("tenant-a")) == []
    assert bucket_keys("") == []


def _policy(fields: dict[str, str]) -> dict[str, Any]:
    return json.loads(base64.b64decode(fields["policy"]))


def test_presigned_post_is_bound_to_key_type_and_size(client: TestClient, tenant_a: Any) -> None:
    response = client.post(
        "/api/v1/uploads",
        json={
            "filename": "big song.flac",
            "content_type": "audio/flac",
            "size": 50_000_000,
            "project_name": "Big",
        },
        headers=tenant_a.headers,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["kind"] == "base-track"
    assert body["max_bytes"] == 50_000_000
    assert body["expires_in"] == get_settings().presign_expiry_s
    pid = body["id"]
    fields = body["upload"]["fields"]
    expected_key = keys.upload("tenant-a", "base-track", pid)
    assert fields["key"] == expected_key
    assert fields["Content-Type"] == "audio/flac"
    conditions = _policy(fields)["conditions"]
    assert ["content-length-range", 1, 50_000_000] in conditions
    assert {"Content-Type": "audio/flac"} in conditions
    assert {"key": expected_key} in conditions
    assert {"bucket": get_settings().bucket} in conditions
    assert get_settings().bucket in body["upload"]["url"]
    project = Project.get("tenant-a", pid)
    assert (project.name, project.status, project.size_bytes) == ("Big", "queued", 50_000_000)


def test_presigned_post_for_style_sound(client: TestClient, tenant_a: Any) -> None:
    response = client.post(
        "/api/v1/uploads",
        json={"filename": "pad.wav", "content_type": "audio/wav", "size": 10, "kind": "style-sound"},
        headers=tenant_a.headers,
    )
    assert response.status_code == 201
    body = response.json()
    assert body["upload"]["fields"]["key"] == keys.upload("tenant-a", "style-sound", body["id"])
    assert ["content-length-range", 1, 10] in _policy(body["upload"]["fields"])["conditions"]
    assert Sound.get("tenant-a", body["id"]).name == "pad"


def test_presigned_forms_for_own_stems_one_per_stem_each_bound_to_its_size(
    client: TestClient, tenant_a: Any
) -> None:
    # Each stem may be as large as the upload limit: four of them are over it together.
    limit = get_settings().max_upload_bytes
    sizes = {"drums": limit, "bass": limit, "vocals": 5, "other": 7}
    response = client.post(
        "/api/v1/uploads",
        json={
            "filename": "stems",
            "content_type": "audio/flac",
            "size": sum(sizes.values()),
            "kind": "stems",
            "stems": sizes,
        },
        headers=tenant_a.headers,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["kind"] == "stems" and body["upload"] is None and set(body["stem_uploads"]) == set(sizes)
    for stem, size in sizes.items():
        fields = body["stem_uploads"][stem]["fields"]
        assert fields["key"] == keys.upload("tenant-a", "stem", body["id"], stem)
        assert ["content-length-range", 1, size] in _policy(fields)["conditions"]
    project = Project.get("tenant-a", body["id"])
    assert project.status == "queued" and project.source_kind == "stems"
    assert project.stems.as_dict() == dict.fromkeys(sizes, False)  # waits for every announced stem
    assert project.expires_at is not None  # forms never used: the row expires


def test_a_stem_over_the_upload_limit_is_413(client: TestClient, tenant_a: Any) -> None:
    too_big = get_settings().max_upload_bytes + 1
    response = client.post(
        "/api/v1/uploads",
        json={"filename": "s", "content_type": "audio/wav", "size": too_big + 1, "kind": "stems",
              "stems": {"drums": too_big, "bass": 1}},
        headers=tenant_a.headers,
    )  # fmt: skip
    assert response.status_code == 413 and "drums" in response.json()["error"]["message"]
    assert list(Project.query("tenant-a")) == []


def test_presigned_post_over_max_upload_is_413(client: TestClient, tenant_a: Any) -> None:
    too_big = get_settings().max_upload_bytes + 1
    response = client.post(
        "/api/v1/uploads",
        json={"filename": "a.wav", "content_type": "audio/wav", "size": too_big},
        headers=tenant_a.headers,
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert list(Project.query("tenant-a")) == []


@pytest.mark.parametrize(
    "payload",
    [
        {"filename": "a.wav", "content_type": "text/html", "size": 10},
        {"filename": "a.wav", "content_type": "audio/wav", "size": 0},
        {"filename": "a.wav", "content_type": "audio/wav", "size": 10, "kind": "stem"},
        {"filename": "", "content_type": "audio/wav", "size": 10},
        {"content_type": "audio/wav", "size": 10},
        {"filename": "a.wav", "content_type": "audio/wav", "size": 10, "surprise": 1},
        {"filename": "s", "content_type": "audio/wav", "size": 10, "kind": "stems"},
        {"filename": "s", "content_type": "audio/wav", "size": 10, "stems": {"drums": 10}},
        {"filename": "s", "content_type": "audio/wav", "size": 10, "kind": "stems", "stems": {}},
        {"filename": "s", "content_type": "audio/wav", "size": 10, "kind": "stems", "stems": {"piano": 10}},
        {"filename": "s", "content_type": "audio/wav", "size": 10, "kind": "stems", "stems": {"drums": 9}},
        {
            "filename": "s",
            "content_type": "audio/wav",
            "size": 1,
            "kind": "stems",
            "stems": {"bass": 0, "drums": 1},
        },
    ],
)
def test_presigned_post_validation(client: TestClient, tenant_a: Any, payload: dict[str, Any]) -> None:
    response = client.post("/api/v1/uploads", json=payload, headers=tenant_a.headers)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_error"


def test_malformed_json_is_400_with_envelope(client: TestClient, tenant_a: Any) -> None:
    response = client.post(
        "/api/v1/uploads",
        content=b"{not json",
        headers={**tenant_a.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json() == {"error": {"code": "bad_request", "message": "request body is not valid JSON"}}


def test_oversized_json_is_413(client: TestClient, tenant_a: Any) -> None:
    response = client.post(
        "/api/v1/uploads",
        json={"filename": "a" * 100_000, "content_type": "audio/wav", "size": 1},
        headers=tenant_a.headers,
    )
    assert response.status_code == 413
