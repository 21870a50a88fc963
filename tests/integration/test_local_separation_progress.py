"""Progress inside separation through the embedded local stack: the Batch job (gpu_batch/entrypoint.py
as a subprocess) reports each finished chunk with the chunk it is on and the time left, measured from its
own time per chunk; the events reach a WebSocket subscriber with the progress stored on the project."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from audio_helpers import synth_song
from tiny_demucs import save_tiny_model
from websockets.sync.client import connect

pytestmark = pytest.mark.timeout(300)

FOUR = ["drums", "bass", "other", "vocals"]
CHUNK = re.compile(r"^separating chunk (\d+) of (\d+), (about \d+ (s|min) left|a few seconds left)$")


@pytest.fixture(scope="module")
def every_progress_event(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No throttling (1 s by default), so each chunk of the short test song is seen, and a tiny 4-source
    `htdemucs` with a 1 s segment in DEMUCS_REPO, so a 9 s song spans several 2 s chunks (the seed's
    demucs_unittest has a 40 s segment: one chunk). The Batch jobs inherit this environment."""
    repo = save_tiny_model(tmp_path_factory.mktemp("demucs-repo"), "htdemucs", FOUR, segment_s=1.0)
    wanted = {"AUDIOMIXER_PROGRESS_MIN_INTERVAL_S": "0", "DEMUCS_REPO": str(repo)}
    saved = {k: os.environ.get(k) for k in wanted}
    os.environ.update(wanted)
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def test_separation_reports_each_chunk_with_the_time_left_over_websocket(
    every_progress_event: None, local_stack: Any
) -> None:
    from audiomixer.auth import create_api_key
    from audiomixer.store.models import Project

    key = create_api_key("progress", label="separation progress")
    song = synth_song(9.0)  # 2 s chunks (the fixture's AUDIOMIXER_SEPARATION_CHUNK_S): several of them
    with httpx.Client(base_url=local_stack.local_url, headers={"Authorization": f"Bearer {key}"}) as api:
        created = api.post(
            "/api/v1/uploads",
            json={
                "filename": "song.wav",
                "content_type": "audio/wav",
                "size": len(song),
                "model": "htdemucs",
            },
        )
        assert created.status_code == 201, created.text
        project_id = created.json()["id"]
        events: list[dict[str, Any]] = []
        with connect(f"{local_stack.ws_url}/ws/project/{project_id}?token={key}", open_timeout=10) as ws:
            events.append(json.loads(ws.recv(timeout=10)))
            form = created.json()["upload"]
            posted = httpx.post(
                form["url"], data=form["fields"], files={"file": ("song.wav", song, "audio/wav")}
            )
            assert posted.status_code in (200, 201, 204), posted.text
            while events[-1]["status"] not in ("ready", "failed"):
                events.append(json.loads(ws.recv(timeout=240)))
    assert events[-1]["status"] == "ready", events
    chunks = [(e, CHUNK.match(e["detail"] or "")) for e in events if e["status"] == "separating"]
    seen = [(int(m[1]), int(m[2]), e["progress"]) for e, m in chunks if m]
    assert len(seen) >= 2, [(e["status"], e["progress"], e["detail"]) for e in events]
    total = seen[0][1]
    assert total >= 4 and all(n == total for _, n, _ in seen)
    assert [k for k, _, _ in seen] == sorted({k for k, _, _ in seen})  # chunk by chunk, in order
    progress = [p for _, _, p in seen]
    assert progress == sorted(progress) and progress[0] < progress[-1] <= 90  # as stored on the project
    details = [e["detail"] for e in events if e["status"] == "separating"]
    assert f"separated chunk {total} of {total}" in details, details
    print(details)  # shown with -s: what a subscriber reads
    assert Project.get("progress", project_id).status == "ready"
