"""Upload → ingest → separation (Batch, local) → analysis → ready, then a mix → completed, watched over
WebSocket by a real client, driven over real HTTP."""

from __future__ import annotations

import io
import json
import threading
import time
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile as sf
from audio_helpers import synth_song, synth_style
from conftest import Stack
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

pytestmark = pytest.mark.slow

PROJECT_ORDER = ["queued", "separating", "analysing", "ready"]
MIX_ORDER = ["queued", "rendering", "completed"]


class Watcher(threading.Thread):
    """Collects every event a WebSocket subscription receives until a terminal status."""

    def __init__(self, url: str, terminal: set[str]) -> None:
        super().__init__(daemon=True)
        self.url, self.terminal = url, terminal
        self.events: list[dict[str, Any]] = []
        self.connected = threading.Event()
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            with connect(self.url, open_timeout=10) as ws:
                self.connected.set()
                while True:
                    event = json.loads(ws.recv(timeout=240))
                    self.events.append(event)
                    if event["status"] in self.terminal:
                        return
        except Exception as exc:
            self.error = exc
            self.connected.set()


def _assert_in_order(events: list[dict[str, Any]], order: list[str]) -> None:
    ranks = [order.index(e["status"]) for e in events]
    assert ranks == sorted(ranks), [e["status"] for e in events]
    assert [e["status"] for e in events][-1] == order[-1], events[-1]
    progress = [e["progress"] for e in events]
    assert progress == sorted(progress), progress


def _wait_status(client: httpx.Client, url: str, wanted: str, timeout: float = 240) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(url).json()
        if body["status"] in (wanted, "failed"):
            assert body["status"] == wanted, body
            return body
        time.sleep(0.5)
    raise AssertionError(f"{url} never reached {wanted}")


def test_song_to_stems_to_mix(stack: Stack) -> None:
    client = httpx.Client(base_url=stack.api, headers=stack.headers(), timeout=30)
    song = synth_song()
    # A presigned upload creates the project first, so the watcher is there before any work starts.
    created = client.post(
        "/api/v1/uploads",
        json={
            "filename": "song.wav",
            "content_type": "audio/wav",
            "size": len(song),
            "kind": "base-track",
            "project_name": "e2e song",
        },
    )
    assert created.status_code in (200, 201), created.text
    project_id = created.json()["id"]
    watcher = Watcher(f"{stack.ws}/ws/project/{project_id}?ticket={stack.ticket()}", {"ready", "failed"})
    watcher.start()
    assert watcher.connected.wait(15) and watcher.error is None, watcher.error
    time.sleep(0.3)  # let the immediate `sync` answer arrive before the upload starts work
    upload = created.json()["upload"]
    started = time.monotonic()
    posted = httpx.post(upload["url"], data=upload["fields"], files={"file": ("song.wav", song, "audio/wav")})
    assert posted.status_code in (200, 201, 204), posted.text
    watcher.join(timeout=300)
    elapsed = time.monotonic() - started
    assert watcher.error is None, watcher.error
    seen = [(e["status"], e["progress"]) for e in watcher.events]
    print(f"\n[e2e] upload to ready: {elapsed:.2f} s; events: {seen}")
    _assert_in_order(watcher.events, PROJECT_ORDER)
    statuses = [e["status"] for e in watcher.events]
    assert {"separating", "analysing", "ready"} <= set(statuses)
    assert len([e for e in watcher.events if e["status"] == "separating"]) >= 2  # progress while separating

    status = client.get(f"/api/v1/projects/{project_id}/status").json()
    assert status["status"] == "ready" and status["stems"] == {
        s: True for s in ("drums", "bass", "vocals", "other")
    }
    # The four stems add back up to the uploaded song (the residual went to `other`).
    stems = []
    for name in ("drums", "bass", "vocals", "other"):
        stem = client.get(f"/api/v1/projects/{project_id}/stems/{name}", follow_redirects=False)
        assert stem.status_code == 307
        audio, sr = sf.read(io.BytesIO(httpx.get(stem.headers["location"]).content), dtype="float64")
        assert sr == 44100 and audio.shape == (6 * 44100, 2)
        stems.append(audio)
    original, _ = sf.read(io.BytesIO(song), dtype="float64")
    error = float(np.max(np.abs(np.sum(stems, axis=0) - original)))
    print(f"[e2e] stems sum back to the song within {error:.2e}")
    assert error < 1e-5

    sound = client.post(
        "/api/v1/upload/style-sound", files=[("files", ("tone.flac", synth_style(), "audio/flac"))]
    )
    assert sound.status_code in (200, 201, 202), sound.text
    sound_id = sound.json()["sounds"][0]["sound_id"]
    _wait_status(client, f"/api/v1/library/{sound_id}", "ready")

    config = {"drums": {"style_sound_id": sound_id, "volume": 1.0}, "vocals": {"enabled": False}}
    mix = client.post(
        "/api/v1/mix",
        json={"project_id": project_id, "config": config, "settings": {"grain_duration_ms": 80}},
    )
    assert mix.status_code in (200, 201, 202), mix.text
    mix_id = mix.json()["mix_id"]
    mix_watcher = Watcher(f"{stack.ws}/ws/mix/{mix_id}?ticket={stack.ticket()}", {"completed", "failed"})
    mix_watcher.start()
    mix_watcher.join(timeout=300)
    assert mix_watcher.error is None, mix_watcher.error
    statuses = [e["status"] for e in mix_watcher.events]
    # The watcher may connect after rendering began; what it sees must still be in order and complete.
    _assert_in_order(mix_watcher.events, MIX_ORDER)
    assert statuses[-1] == "completed"
    mixed = _download_mix(client, mix_id)
    assert mixed.shape == (6 * 44100, 2)
    _assert_mix_of(mixed, dict(zip(("drums", "bass", "vocals", "other"), stems, strict=True)))

    # The same request at another grain renders the styled stem differently (and only that stem).
    again = client.post(
        "/api/v1/mix",
        json={"project_id": project_id, "config": config, "settings": {"grain_duration_ms": 400}},
    )
    assert again.status_code in (200, 201, 202), again.text
    _wait_status(client, f"/api/v1/mix/{again.json()['mix_id']}", "completed")
    coarse = _download_mix(client, again.json()["mix_id"])
    change = float(np.linalg.norm(coarse - mixed) / np.linalg.norm(mixed - stems[1] - stems[3]))
    print(f"[e2e] 80 ms vs 400 ms grains: the rendered drums differ by {change:.2f} of their norm")
    assert change > 0.2, "the grain duration made no difference: it was ignored"


def _download_mix(client: httpx.Client, mix_id: str) -> np.ndarray:
    download = client.get(f"/api/v1/mix/{mix_id}/download", follow_redirects=False)
    assert download.status_code == 307
    audio, sr = sf.read(io.BytesIO(httpx.get(download.headers["location"]).content), dtype="float64")
    assert sr == 44100
    return np.asarray(audio)


def _assert_mix_of(mixed: np.ndarray, stems: dict[str, np.ndarray]) -> None:
    """The mix holds bass and other unchanged, no vocals (disabled) and, for drums, a rendering of the
    style sound rather than the drums themselves: a least-squares fit of the mix on the four original
    stems gives about 1 for bass and other, about 0 for vocals, and leaves the rendered drums over."""
    names = list(stems)
    basis = np.stack([stems[n].ravel() for n in names], axis=1)
    coef, *_ = np.linalg.lstsq(basis, mixed.ravel(), rcond=None)
    weights = dict(zip(names, coef.round(3).tolist(), strict=True))
    rendered = mixed - stems["bass"] - stems["other"]
    drums_kept = float(np.linalg.norm(rendered - stems["drums"]) / np.linalg.norm(stems["drums"]))
    print(f"[e2e] mix = {weights} x stems + rest; the drums part differs from the drums by {drums_kept:.2f}")
    assert abs(weights["bass"] - 1) < 0.1 and abs(weights["other"] - 1) < 0.1, weights
    assert abs(weights["vocals"]) < 0.2, f"vocals were disabled yet are in the mix: {weights}"
    assert np.linalg.norm(rendered) > 0.05 * np.linalg.norm(stems["drums"]), "nothing rendered for drums"
    assert drums_kept > 0.3, "the drums came through unchanged: the style sound was ignored"


def test_late_subscriber_gets_the_final_state_and_strangers_are_refused(stack: Stack) -> None:
    client = httpx.Client(base_url=stack.api, headers=stack.headers(), timeout=30)
    response = client.post(
        "/api/v1/upload/base-track",
        files={"file": ("bad.wav", b"not audio at all" * 100, "audio/wav")},
        data={"project_name": "broken"},
    )
    assert response.status_code in (200, 201, 202), response.text
    project_id = response.json()["project_id"]
    deadline = time.monotonic() + 60
    while client.get(f"/api/v1/projects/{project_id}/status").json()["status"] != "failed":
        assert time.monotonic() < deadline
        time.sleep(0.3)
    with connect(f"{stack.ws}/ws/project/{project_id}?ticket={stack.ticket()}", open_timeout=10) as ws:
        event = json.loads(ws.recv(timeout=10))
    assert event["status"] == "failed" and event["detail"]

    other_key = stack.new_key("someone-else")
    for url in (
        f"{stack.ws}/ws/project/{project_id}?ticket={stack.ticket(other_key)}",
        f"{stack.ws}/ws/project/{project_id}?token={other_key}",
        f"{stack.ws}/ws/project/{project_id}?token=am_forged",
        f"{stack.ws}/ws/project/{project_id}",
    ):
        with pytest.raises((InvalidStatus, ConnectionClosed)), connect(url, open_timeout=10) as ws:
            ws.recv(timeout=5)
