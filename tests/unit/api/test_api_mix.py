"""POST /mix validation matrix, queueing, status and download."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import pytest
from fastapi.testclient import TestClient

from audiomixer.settings import STEMS
from audiomixer.store import keys
from audiomixer.store.models import Mix


def _mix(client: TestClient, tenant: Any, project_id: str, **extra: Any) -> Any:
    return client.post("/api/v1/mix", json={"project_id": project_id, **extra}, headers=tenant.headers)


def test_mix_is_stored_and_queued(
    client: TestClient, tenant_a: Any, make_project: Any, make_sound: Any, render_messages: Any
) -> None:
    project = make_project(tenant_a)
    sound = make_sound(tenant_a)
    response = _mix(
        client,
        tenant_a,
        project.project_id,
        config={
            "drums": {"style_sound_id": sound.sound_id, "volume": 1.5, "mode": "percussive"},
            "vocals": {"enabled": False},
        },
        settings={
            "grain_duration_ms": 80,
            "use_pitch_mapping": False,
            "output_format": "flac",
            "target_lufs": -14,
            "seed": 7,
        },
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "queued"
    mix = Mix.get("tenant-a", body["mix_id"])
    assert mix.project_id == project.project_id
    assert mix.status == "queued"
    assert mix.output_format == "flac"
    # Every stem is spelled out: the renderer never guesses what an absent stem means.
    assert mix.config == {
        "drums": {"enabled": True, "style_sound_id": sound.sound_id, "volume": 1.5, "mode": "percussive"},
        "bass": {"enabled": True, "style_sound_id": None, "volume": 1.0, "mode": "auto"},
        "vocals": {"enabled": False, "style_sound_id": None, "volume": 1.0, "mode": "auto"},
        "other": {"enabled": True, "style_sound_id": None, "volume": 1.0, "mode": "auto"},
    }
    assert mix.settings == {
        "grain_duration_ms": 80,
        "use_pitch_mapping": False,
        "use_envelope": True,
        "seed": 7,
        "output_format": "flac",
        "target_lufs": -14.0,
    }
    assert render_messages() == [{"tenant_id": "tenant-a", "mix_id": body["mix_id"]}]


def test_mix_defaults(client: TestClient, tenant_a: Any, make_project: Any, render_messages: Any) -> None:
    project = make_project(tenant_a)
    response = _mix(client, tenant_a, project.project_id)
    assert response.status_code == 202
    mix = Mix.get("tenant-a", response.json()["mix_id"])
    assert mix.settings["grain_duration_ms"] == 120
    assert mix.settings["use_pitch_mapping"] is True and mix.settings["use_envelope"] is True
    assert mix.settings["seed"] == 0  # fixed: the same request renders the same audio
    assert mix.output_format == "wav"
    default = {"enabled": True, "style_sound_id": None, "volume": 1.0, "mode": "auto"}
    assert all(mix.config[s] == default for s in STEMS)
    assert len(render_messages()) == 1


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ({"config": {"kazoo": {"enabled": True}}}, "kazoo"),
        ({"config": {"drums": {"volume": 2.5}}}, "volume"),
        ({"config": {"drums": {"volume": -0.1}}}, "volume"),
        ({"config": {"drums": {"enabled": "maybe"}}}, "enabled"),
        ({"config": {"drums": {"pan": 0}}}, "pan"),
        ({"config": {"drums": {"mode": "melodic"}}}, "mode"),
        ({"settings": {"grain_duration_ms": 5}}, "grain_duration_ms"),
        ({"settings": {"grain_duration_ms": 1001}}, "grain_duration_ms"),
        ({"settings": {"output_format": "ogg"}}, "output_format"),
        ({"settings": {"target_lufs": 3}}, "target_lufs"),
        ({"settings": {"target_lufs": -41}}, "target_lufs"),
        ({"settings": {"seed": -1}}, "seed"),
        ({"settings": {"seed": 2**32}}, "seed"),
        ({"settings": {"seed": 1.5}}, "seed"),
        ({"config": {s: {"enabled": False} for s in STEMS}}, "every stem is disabled"),
    ],
)
def test_mix_validation_is_422(
    client: TestClient,
    tenant_a: Any,
    make_project: Any,
    render_messages: Any,
    extra: dict[str, Any],
    needle: str,
) -> None:
    project = make_project(tenant_a)
    response = _mix(client, tenant_a, project.project_id, **extra)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert needle in error["message"]
    assert list(Mix.query("tenant-a")) == []
    assert render_messages() == []


def test_mix_missing_project_id_is_422(client: TestClient, tenant_a: Any) -> None:
    response = client.post("/api/v1/mix", json={"config": {}}, headers=tenant_a.headers)
    assert response.status_code == 422
    assert "project_id" in response.json()["error"]["message"]


@pytest.mark.parametrize("project_id", ["0" * 32, "not-an-id"])
def test_mix_unknown_project_is_404(
    client: TestClient, tenant_a: Any, project_id: str, render_messages: Any
) -> None:
    response = _mix(client, tenant_a, project_id)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert render_messages() == []


@pytest.mark.parametrize("status", ["queued", "separating", "analysing", "failed"])
def test_mix_project_not_ready_is_409(
    client: TestClient, tenant_a: Any, make_project: Any, status: str, render_messages: Any
) -> None:
    project = make_project(tenant_a, status=status, stems={})
    response = _mix(client, tenant_a, project.project_id)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
    assert status in response.json()["error"]["message"]
    assert render_messages() == []


def test_mix_unknown_style_sound_is_404(client: TestClient, tenant_a: Any, make_project: Any) -> None:
    project = make_project(tenant_a)
    for sound_id in ("f" * 32, "bogus"):
        response = _mix(client, tenant_a, project.project_id, config={"bass": {"style_sound_id": sound_id}})
        assert response.status_code == 404
        assert "bass" in response.json()["error"]["message"]
    assert list(Mix.query("tenant-a")) == []


def test_mix_with_another_tenants_sound_or_project_is_404(
    client: TestClient, tenant_a: Any, tenant_b: Any, make_project: Any, make_sound: Any, render_messages: Any
) -> None:
    a_project = make_project(tenant_a)
    a_sound = make_sound(tenant_a)
    b_project = make_project(tenant_b)
    assert _mix(client, tenant_b, a_project.project_id).status_code == 404
    response = _mix(
        client, tenant_b, b_project.project_id, config={"drums": {"style_sound_id": a_sound.sound_id}}
    )
    assert response.status_code == 404
    assert render_messages() == []


@pytest.mark.parametrize("status", ["queued", "analysing", "failed"])
def test_mix_sound_not_analysed_is_409(
    client: TestClient, tenant_a: Any, make_project: Any, make_sound: Any, status: str
) -> None:
    project = make_project(tenant_a)
    sound = make_sound(tenant_a, status=status)
    response = _mix(
        client, tenant_a, project.project_id, config={"other": {"style_sound_id": sound.sound_id}}
    )
    assert response.status_code == 409
    assert status in response.json()["error"]["message"]


def _stored_mix(tenant: Any, project_id: str, status: str, **fields: Any) -> Mix:
    from audiomixer.store.keys import new_id

    mix = Mix(tenant.tenant_id, new_id(), project_id=project_id, status=status, **fields)
    mix.save()
    return mix


def test_mix_status_while_rendering(client: TestClient, tenant_a: Any) -> None:
    mix = _stored_mix(tenant_a, "a" * 32, "rendering", progress=30, stage="render")
    response = client.get(f"/api/v1/mix/{mix.mix_id}", headers=tenant_a.headers)
    assert response.status_code == 200
    body = response.json()
    assert {k: body[k] for k in ("mix_id", "project_id", "status", "progress", "error", "download_url")} == {
        "mix_id": mix.mix_id,
        "project_id": "a" * 32,
        "status": "rendering",
        "progress": 30,
        "error": None,
        "download_url": None,
    }
    download = client.get(f"/api/v1/mix/{mix.mix_id}/download", headers=tenant_a.headers)
    assert download.status_code == 409
    assert download.json()["error"]["code"] == "conflict"


def test_mix_failed_reports_reason(client: TestClient, tenant_a: Any) -> None:
    mix = _stored_mix(tenant_a, "a" * 32, "failed", failure_reason="style sound is silent")
    body = client.get(f"/api/v1/mix/{mix.mix_id}", headers=tenant_a.headers).json()
    assert body["error"] == "style sound is silent"
    assert body["download_url"] is None


def test_completed_mix_downloads_by_redirect(client: TestClient, tenant_a: Any) -> None:
    mix = _stored_mix(tenant_a, "a" * 32, "completed", output_format="mp3", progress=100)
    mix.update(actions=[Mix.output_key.set(keys.mix_output("tenant-a", mix.mix_id, "mp3"))])
    body = client.get(f"/api/v1/mix/{mix.mix_id}", headers=tenant_a.headers).json()
    assert body["download_url"] == f"/api/v1/mix/{mix.mix_id}/download"
    assert body["progress"] == 100
    response = client.get(body["download_url"], headers=tenant_a.headers)
    assert response.status_code == 307
    location = urlparse(response.headers["location"])
    assert location.path.endswith(keys.mix_output("tenant-a", mix.mix_id, "mp3"))
    assert "X-Amz-Signature" in location.query


def test_mix_isolation_and_malformed_ids(client: TestClient, tenant_a: Any, tenant_b: Any) -> None:
    mix = _stored_mix(tenant_a, "a" * 32, "completed")
    for path in (f"/api/v1/mix/{mix.mix_id}", f"/api/v1/mix/{mix.mix_id}/download"):
        assert client.get(path, headers=tenant_b.headers).status_code == 404
    for bad in ("zzz", "0" * 32):
        assert client.get(f"/api/v1/mix/{bad}", headers=tenant_a.headers).status_code == 404
        assert client.get(f"/api/v1/mix/{bad}/download", headers=tenant_a.headers).status_code == 404


def test_mixes_list(client: TestClient, tenant_a: Any, tenant_b: Any) -> None:
    ids = {_stored_mix(tenant_a, "a" * 32, "queued").mix_id for _ in range(3)}
    first = client.get("/api/v1/mixes", params={"limit": 2}, headers=tenant_a.headers).json()
    second = client.get(
        "/api/v1/mixes", params={"limit": 2, "cursor": first["next_cursor"]}, headers=tenant_a.headers
    ).json()
    assert {m["mix_id"] for m in first["items"] + second["items"]} == ids
    assert second["next_cursor"] is None
    assert client.get("/api/v1/mixes", headers=tenant_b.headers).json()["items"] == []
