"""The files people have, through the API of the in-process local stack: songs in M4A (AAC, and ALAC),
Opus in WebM and WMA, made in the test with PyAV's encoders, uploaded as multipart bodies, reach `ready`
(ingest decodes them with FFmpeg, Demucs separates them); an M4A style sound through a presigned POST
reaches `ready` too; and a cut M4A fails with a reason a person can act on."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from api_client import Api, load_data_module, post_form

from audiomixer_tools import signals as S

DATA = Path(__file__).resolve().parents[1] / "data"
corpus = load_data_module("hostile_audio_corpus_formats", DATA / "hostile" / "make_corpus.py")
SR = 44100
SECONDS = 3.0
# What a browser or phone sends for each (WebM often arrives as video/webm).
SONGS = {
    "m4a_aac": ("song.m4a", "audio/mp4", SR),
    "m4a_alac": ("song-lossless.m4a", "audio/x-m4a", SR),
    "webm_opus": ("song.webm", "video/webm", 48000),
    "wma": ("song.wma", "audio/x-ms-wma", SR),
}


@pytest.fixture(scope="module")
def api(local_stack: Any) -> Iterator[Api]:
    from audiomixer.auth import create_api_key

    tenant = f"formats-{uuid.uuid4().hex[:6]}"
    client = Api(local_stack.local_url, create_api_key(tenant), tenant)
    yield client
    client.http.close()


def _song(sr: int) -> np.ndarray:
    from audiomixer.dsp.audio_io import resample

    stems, _ = S.synth_song(SECONDS, SR, seed=11)
    mix = (0.5 * sum(stems.values())).astype(np.float32)
    return resample(mix, SR, sr)


@pytest.mark.slow
def test_songs_in_every_ffmpeg_format_reach_ready(api: Api) -> None:
    projects = {}
    for name, (filename, ctype, sr) in SONGS.items():
        data = corpus.encode_ffmpeg(_song(sr), name, sr)
        response = api.post(
            "/api/v1/upload/base-track",
            files={"file": (filename, data, ctype)},
            data={"project_name": name},
        )
        assert response.status_code == 202, (name, response.text)
        projects[name] = response.json()["project_id"]
    for name, project_id in projects.items():
        status = api.wait(f"/api/v1/projects/{project_id}/status", timeout=240)
        assert status["status"] == "ready", (name, status)
        assert all(status["stems"].values()), (name, status)
        detail = api.get(f"/api/v1/projects/{project_id}").json()
        # WMA's encoder drops its last partial frame (46 ms); the rest keep every sample.
        assert detail["duration_s"] == pytest.approx(SECONDS, abs=0.05), (name, detail)


def test_m4a_style_sound_through_a_presigned_post_reaches_ready(api: Api) -> None:
    data = corpus.encode_ffmpeg(S.style_kit(SR, kit=1).astype(np.float32), "m4a_aac")
    form = api.presign("style-sound", len(data), "kit.m4a", "audio/mp4")
    assert post_form(form, data, filename="kit.m4a").status_code in (200, 201, 204)
    sound = api.wait(f"/api/v1/library/{form['id']}", timeout=120)
    assert sound["status"] == "ready", sound


def test_a_cut_m4a_fails_with_a_reason(api: Api) -> None:
    data = corpus.encode_ffmpeg(_song(SR), "m4a_aac")
    response = api.post(
        "/api/v1/upload/base-track",
        files={"file": ("cut.m4a", data[: len(data) // 2], "audio/mp4")},
        data={"project_name": "cut"},
    )
    assert response.status_code == 202, response.text
    status = api.wait(f"/api/v1/projects/{response.json()['project_id']}/status", timeout=120)
    assert status["status"] == "failed" and status["stage"] == "ingest", status
    assert "truncated" in status["error"] and "Upload the complete file" in status["error"], status


def _stem_files(seconds: float) -> dict[str, tuple[str, bytes]]:
    """Four stems of one song, each in another format FFmpeg brings (or WAV for the big ones)."""
    from audiomixer.dsp.audio_io import resample

    stems, _ = S.synth_song(seconds, SR, seed=12)
    made = {"drums": "m4a_aac", "bass": "m4a_alac", "vocals": "webm_opus", "other": "wma"}
    out = {}
    for stem, name in made.items():
        sr = 48000 if "opus" in name else SR
        x = resample(np.asarray(stems[stem], np.float32), SR, sr)
        out[stem] = (name, corpus.encode_ffmpeg(x, name, sr))
    return out


def _presign_stems(
    api: Api, files: dict[str, bytes], ctype: str = "application/octet-stream"
) -> dict[str, Any]:
    sizes = {stem: len(data) for stem, data in files.items()}
    response = api.post(
        "/api/v1/uploads",
        json={
            "filename": "my-stems",
            "content_type": ctype,
            "size": sum(sizes.values()),
            "kind": "stems",
            "stems": sizes,
            "project_name": "own stems",
        },
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    assert body["kind"] == "stems" and body["upload"] is None and set(body["stem_uploads"]) == set(files)
    return body


def test_own_stems_through_presigned_forms_reach_ready(api: Api) -> None:
    files = {stem: data for stem, (_, data) in _stem_files(SECONDS).items()}
    body = _presign_stems(api, files)
    project_id = body["id"]
    for n, (stem, data) in enumerate(files.items()):
        form = {"upload": body["stem_uploads"][stem]}
        assert post_form(form, data, filename=f"{stem}.bin").status_code in (200, 201, 204)
        if n < len(files) - 1:  # waits for every announced stem
            status = api.get(f"/api/v1/projects/{project_id}/status").json()
            assert status["status"] == "queued", status
    status = api.wait(f"/api/v1/projects/{project_id}/status", timeout=180)
    assert status["status"] == "ready", status
    assert all(status["stems"].values()), status
    detail = api.get(f"/api/v1/projects/{project_id}").json()
    assert detail["source_kind"] == "stems" and detail["duration_s"] == pytest.approx(SECONDS, abs=0.05)


def test_a_stems_form_holds_only_its_stem_size(api: Api) -> None:
    files = {"drums": corpus.encode_ffmpeg(_song(SR), "m4a_aac")}
    body = _presign_stems(api, files)
    form = {"upload": body["stem_uploads"]["drums"]}
    # One byte more than announced: S3 (and the local stack, as S3 does) refuses the form.
    assert post_form(form, files["drums"] + b"\0").status_code >= 400
    assert api.get(f"/api/v1/projects/{body['id']}/status").json()["status"] == "queued"


@pytest.mark.slow
def test_four_40_mb_stems_through_presigned_forms(api: Api) -> None:
    # 40 MB of 16-bit stereo WAV is 3.96 minutes: over the multipart limit ten times, per stem.
    seconds = 40 * 1024 * 1024 / (SR * 4)
    stems, _ = S.synth_song(10.0, SR, seed=13)
    files = {}
    for stem, x in stems.items():
        x = np.asarray(x, np.float32)
        x = np.tile(x if x.ndim == 2 else np.stack([x, x], axis=1), (int(seconds / 10) + 1, 1))
        x = x[: int(seconds * SR)]
        files[stem] = corpus.encode(x, "WAV", "PCM_16")
    assert all(len(d) >= 40 * 1000 * 1000 for d in files.values())
    body = _presign_stems(api, files, "audio/wav")
    for stem, data in files.items():
        assert post_form({"upload": body["stem_uploads"][stem]}, data).status_code in (200, 201, 204)
    status = api.wait(f"/api/v1/projects/{body['id']}/status", timeout=600)
    assert status["status"] == "ready", status
