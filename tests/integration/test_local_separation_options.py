"""Separation options through the embedded local stack (moto, pollers, local Batch running
gpu_batch/entrypoint.py as a subprocess): a two-stem project and a 6-stem project reach `ready` with the
stem set their model gives, stems that sum to the stored source exactly, and mixes over those stems.

The 6-stem model is a tiny random HDemucs saved as `htdemucs_6s` into a DEMUCS_REPO folder (how an
offline deployment holds real weights); nothing is downloaded."""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import numpy as np
import pytest
import soundfile as sf
from audio_helpers import synth_song
from tiny_demucs import SIX_SOURCES, save_tiny_model
from websockets.sync.client import connect

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def tiny_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A DEMUCS_REPO holding a 6-source `htdemucs_6s`, in the environment the Batch jobs inherit."""
    repo = save_tiny_model(tmp_path_factory.mktemp("demucs-repo"), "htdemucs_6s", SIX_SOURCES)
    saved = os.environ.get("DEMUCS_REPO")
    os.environ["DEMUCS_REPO"] = str(repo)
    yield repo
    if saved is None:
        os.environ.pop("DEMUCS_REPO", None)
    else:
        os.environ["DEMUCS_REPO"] = saved


@pytest.fixture(scope="module")
def stack(tiny_repo: Path, local_stack: Any) -> Any:
    return local_stack


@pytest.fixture
def api(stack: Any) -> Iterator[httpx.Client]:
    from audiomixer.auth import create_api_key

    key = create_api_key("options", label="separation options")
    with httpx.Client(
        base_url=stack.local_url, headers={"Authorization": f"Bearer {key}"}, timeout=30
    ) as client:
        yield client


def _upload(api: httpx.Client, **options: str) -> str:
    response = api.post(
        "/api/v1/upload/base-track",
        files={"file": ("song.wav", synth_song(3.0), "audio/wav")},
        data={"project_name": "options", **options},
    )
    assert response.status_code == 202, response.text
    return str(response.json()["project_id"])


def _wait(api: httpx.Client, url: str, wanted: str, timeout: float = 240) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body: dict[str, Any] = api.get(url).json()
        if body["status"] in (wanted, "failed"):
            assert body["status"] == wanted, body
            return body
        time.sleep(0.3)
    raise AssertionError(f"{url} never reached {wanted}")


def _pcm(stack: Any, key: str) -> np.ndarray:
    s3 = boto3.client("s3", endpoint_url=stack.endpoint_url, region_name="us-east-1")
    body = s3.get_object(Bucket=stack.res.env["AUDIOMIXER_BUCKET"], Key=key)["Body"].read()
    return sf.read(io.BytesIO(body), dtype="int32")[0].astype(np.int64) >> 8


def _assert_stems_sum_to_source(stack: Any, project_id: str, stems: list[str]) -> None:
    from audiomixer.store import keys

    source = _pcm(stack, keys.project_source("options", project_id))
    total = sum(_pcm(stack, keys.stem("options", project_id, stem)) for stem in stems)
    assert np.array_equal(total, source)


def test_two_stem_project_is_ready_with_vocals_and_no_vocals_that_sum_to_the_song(
    stack: Any, api: httpx.Client
) -> None:
    song = synth_song(3.0)
    created = api.post(
        "/api/v1/uploads",
        json={"filename": "song.wav", "content_type": "audio/wav", "size": len(song), "two_stems": "vocals"},
    )
    assert created.status_code == 201, created.text
    project_id = created.json()["id"]
    status = api.get(f"/api/v1/projects/{project_id}/status").json()
    assert status["stems"] == {"vocals": False, "no_vocals": False}  # known before separation
    token = api.headers["Authorization"].removeprefix("Bearer ")
    events: list[dict[str, Any]] = []
    with connect(f"{stack.ws_url}/ws/project/{project_id}?token={token}", open_timeout=10) as ws:
        events.append(json.loads(ws.recv(timeout=10)))  # the current state, at once
        form = created.json()["upload"]
        posted = httpx.post(form["url"], data=form["fields"], files={"file": ("song.wav", song, "audio/wav")})
        assert posted.status_code in (200, 201, 204), posted.text
        while events[-1]["status"] not in ("ready", "failed"):
            events.append(json.loads(ws.recv(timeout=240)))
    separated = [e for e in events if e["status"] == "analysing" and e["stage"] == "analyse"]
    assert separated and separated[0]["detail"] == "separated into vocals, no_vocals", events
    body = _wait(api, f"/api/v1/projects/{project_id}/status", "ready")
    assert body["stems"] == {"vocals": True, "no_vocals": True}
    detail = api.get(f"/api/v1/projects/{project_id}").json()
    assert (detail["model"], detail["two_stems"]) == (None, "vocals")
    assert list(detail["stem_urls"]) == ["vocals", "no_vocals"]
    assert set(detail["analysis"]) == {"vocals", "no_vocals"}  # analysis ran per stem of the set
    _assert_stems_sum_to_source(stack, project_id, ["vocals", "no_vocals"])
    assert api.get(f"/api/v1/projects/{project_id}/stems/no_vocals").status_code == 307
    drums = api.get(f"/api/v1/projects/{project_id}/stems/drums")
    assert drums.status_code == 404 and "vocals, no_vocals" in drums.json()["error"]["message"]

    refused = api.post("/api/v1/mix", json={"project_id": project_id, "config": {"drums": {"volume": 0.5}}})
    assert refused.status_code == 422
    assert (
        "drums" in refused.json()["error"]["message"]
        and "vocals, no_vocals" in refused.json()["error"]["message"]
    )
    mix = api.post(
        "/api/v1/mix",
        json={
            "project_id": project_id,
            "config": {"vocals": {"enabled": False}, "no_vocals": {"volume": 1.0}},
        },
    )
    assert mix.status_code == 202, mix.text
    _wait(api, f"/api/v1/mix/{mix.json()['mix_id']}", "completed")


def test_six_stem_project_exposes_guitar_and_piano(stack: Any, api: httpx.Client) -> None:
    # The same song as the two-stem test: an identical upload reuses stems only if separated the same way.
    project_id = _upload(api, model="htdemucs_6s")
    body = _wait(api, f"/api/v1/projects/{project_id}/status", "ready")
    six = ["drums", "bass", "vocals", "other", "guitar", "piano"]
    assert list(body["stems"]) == six and all(body["stems"].values())
    _assert_stems_sum_to_source(stack, project_id, six)
    detail = api.get(f"/api/v1/projects/{project_id}").json()
    assert detail["model"] == "htdemucs_6s" and set(detail["analysis"]) == set(six)
    assert api.get(f"/api/v1/projects/{project_id}/stems/guitar").status_code == 307
    mix = api.post(
        "/api/v1/mix",
        json={"project_id": project_id, "config": {"piano": {"enabled": False}, "guitar": {"volume": 1.5}}},
    )
    assert mix.status_code == 202, mix.text
    _wait(api, f"/api/v1/mix/{mix.json()['mix_id']}", "completed")


def test_unknown_model_is_refused_with_the_choices_and_nothing_is_created(
    stack: Any, api: httpx.Client
) -> None:
    before = api.get("/api/v1/projects").json()["items"]
    response = api.post(
        "/api/v1/upload/base-track",
        files={"file": ("song.wav", synth_song(1.0), "audio/wav")},
        data={"model": "htdemucs_7s"},
    )
    assert response.status_code == 422
    message = response.json()["error"]["message"]
    assert "htdemucs_7s" in message and "htdemucs_6s" in message and "mdx_extra" in message
    assert api.get("/api/v1/projects").json()["items"] == before
