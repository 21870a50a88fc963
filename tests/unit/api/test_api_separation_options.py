"""Separation options over the API: model and two-stem mode on both base-track uploads, stored on the
project; the project's own stem set in status, details, stem downloads and mix validation."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from audiomixer.store.models import Mix, Project

AUDIO = b"RIFF" + bytes(range(256)) * 8
SIX = {"drums": True, "bass": True, "vocals": True, "other": True, "guitar": True, "piano": True}


def _upload(client: TestClient, tenant: Any, **fields: str) -> Any:
    return client.post(
        "/api/v1/upload/base-track",
        files={"file": ("song.wav", AUDIO, "audio/wav")},
        data=fields,
        headers=tenant.headers,
    )


def _presign(client: TestClient, tenant: Any, **extra: Any) -> Any:
    body = {"filename": "s.flac", "content_type": "audio/flac", "size": 1000, "kind": "base-track", **extra}
    return client.post("/api/v1/uploads", json=body, headers=tenant.headers)


def test_multipart_upload_stores_the_options_and_status_shows_their_stems(
    client: TestClient, tenant_a: Any
) -> None:
    response = _upload(client, tenant_a, model="htdemucs_6s")
    assert response.status_code == 202, response.text
    pid = response.json()["project_id"]
    project = Project.get("tenant-a", pid)
    assert (project.separation_model, project.two_stems) == ("htdemucs_6s", None)
    status = client.get(f"/api/v1/projects/{pid}/status", headers=tenant_a.headers).json()
    assert status["stems"] == dict.fromkeys(SIX, False)

    two = _upload(client, tenant_a, model="htdemucs", two_stems="vocals").json()["project_id"]
    detail = client.get(f"/api/v1/projects/{two}", headers=tenant_a.headers).json()
    assert detail["stems"] == {"vocals": False, "no_vocals": False}
    assert (detail["model"], detail["two_stems"]) == ("htdemucs", "vocals")

    default = _upload(client, tenant_a).json()["project_id"]
    assert Project.get("tenant-a", default).separation_model is None
    status = client.get(f"/api/v1/projects/{default}/status", headers=tenant_a.headers).json()
    assert status["stems"] == {"drums": False, "bass": False, "vocals": False, "other": False}


def test_presigned_upload_stores_the_options(client: TestClient, tenant_a: Any) -> None:
    response = _presign(client, tenant_a, model="mdx_extra", two_stems="vocals")
    assert response.status_code == 201, response.text
    project = Project.get("tenant-a", response.json()["id"])
    assert (project.separation_model, project.two_stems) == ("mdx_extra", "vocals")


@pytest.mark.parametrize(
    ("fields", "needles"),
    [
        ({"model": "htdemucs_7s"}, ["htdemucs_7s", "htdemucs_ft", "htdemucs_6s", "mdx_extra"]),
        ({"model": "htdemucs", "two_stems": "guitar"}, ["guitar", "drums, bass, other, vocals"]),
        ({"two_stems": "../vocals"}, ["two_stems"]),
    ],
)
def test_unknown_options_are_422_with_the_choices_and_create_nothing(
    client: TestClient, tenant_a: Any, bucket_keys: Any, fields: dict[str, str], needles: list[str]
) -> None:
    for response in (_upload(client, tenant_a, **fields), _presign(client, tenant_a, **fields)):
        assert response.status_code == 422, response.text
        message = response.json()["error"]["message"]
        assert all(n in message for n in needles), message
    assert list(Project.query("tenant-a")) == []
    assert bucket_keys("") == []


def test_options_on_a_style_sound_upload_are_422(client: TestClient, tenant_a: Any) -> None:
    response = _presign(client, tenant_a, kind="style-sound", model="htdemucs")
    assert response.status_code == 422
    assert "base-track" in response.json()["error"]["message"]


def test_stem_downloads_follow_the_projects_stem_set(
    client: TestClient, tenant_a: Any, make_project: Any
) -> None:
    six = make_project(tenant_a, stems=SIX, separation_model="htdemucs_6s")
    four = make_project(tenant_a)
    two = make_project(tenant_a, stems={"vocals": True, "no_vocals": True}, two_stems="vocals")
    url = "/api/v1/projects/{}/stems/{}"
    get = lambda p, s: client.get(url.format(p.project_id, s), headers=tenant_a.headers)  # noqa: E731
    assert get(six, "guitar").status_code == 307
    assert get(two, "no_vocals").status_code == 307
    missing = get(four, "guitar")
    assert missing.status_code == 404
    assert "drums, bass, vocals, other" in missing.json()["error"]["message"]
    assert get(two, "drums").status_code == 404
    detail = client.get(f"/api/v1/projects/{six.project_id}", headers=tenant_a.headers).json()
    assert list(detail["stem_urls"]) == list(SIX)


def test_mix_config_is_checked_against_the_projects_stems(
    client: TestClient, tenant_a: Any, make_project: Any, render_messages: Any
) -> None:
    four = make_project(tenant_a)
    response = client.post(
        "/api/v1/mix",
        json={"project_id": four.project_id, "config": {"guitar": {"volume": 0.5}}},
        headers=tenant_a.headers,
    )
    assert response.status_code == 422
    message = response.json()["error"]["message"]
    assert "guitar" in message and "drums, bass, vocals, other" in message
    assert render_messages() == []

    two = make_project(tenant_a, stems={"vocals": True, "no_vocals": True}, two_stems="vocals")
    response = client.post(
        "/api/v1/mix",
        json={"project_id": two.project_id, "config": {"vocals": {"enabled": False}}},
        headers=tenant_a.headers,
    )
    assert response.status_code == 202, response.text
    mix = Mix.get("tenant-a", response.json()["mix_id"])
    assert set(mix.config) == {"vocals", "no_vocals"}
    assert (mix.config["vocals"]["enabled"], mix.config["no_vocals"]["enabled"]) == (False, True)


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Any:
    """A deployment whose separation image holds three models (template.yaml's ServedDemucsModels)."""
    from audiomixer.settings import get_settings

    monkeypatch.setenv("AUDIOMIXER_SERVED_MODELS", "htdemucs_ft htdemucs,htdemucs_6s")
    get_settings.cache_clear()
    yield get_settings()
    monkeypatch.delenv("AUDIOMIXER_SERVED_MODELS")
    get_settings.cache_clear()


def test_a_model_the_deployment_does_not_serve_is_422_naming_the_served_ones(
    client: TestClient, tenant_a: Any, bucket_keys: Any, served: Any
) -> None:
    assert served.served_models == ["htdemucs_ft", "htdemucs", "htdemucs_6s"]
    for response in (
        _upload(client, tenant_a, model="mdx_extra"),
        _presign(client, tenant_a, model="mdx_extra"),
    ):
        assert response.status_code == 422, response.text
        message = response.json()["error"]["message"]
        assert "'mdx_extra' is not served by this deployment" in message, message
        assert "htdemucs_ft, htdemucs, htdemucs_6s" in message, message
    assert list(Project.query("tenant-a")) == []
    assert bucket_keys("") == []
    ok = _presign(client, tenant_a, model="htdemucs_6s")  # a served one still goes through
    assert ok.status_code == 201, ok.text


def test_without_a_served_list_every_model_demucs_knows_is_allowed() -> None:
    from audiomixer.settings import Settings

    assert Settings().served_models == []  # locally (and in tests) nothing restricts the choice
    response_model = "mdx_extra"
    from audiomixer.stem_sets import check_options

    check_options(response_model, None, default="htdemucs_ft")  # does not raise
