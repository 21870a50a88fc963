"""Each function of template.yaml runs locally under its own IAM policies (audiomixer_local.iam): these
flows go through the embedded local stack and fail, as on AWS, when a function lacks a permission it uses.
They cover the review's blockers 2 (BatchEvents reads the stems), 3 (WebSocket `sound_id=` reads the
sounds table) and 4 (batch:TerminateJob when a project is deleted)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from audio_helpers import synth_song, synth_style
from polling import wait_for

pytestmark = pytest.mark.timeout(300)


def tenant_client(stack: Any, tenant: str) -> tuple[httpx.Client, str]:
    from audiomixer.auth import create_api_key

    key = create_api_key(tenant, label="permissions")
    return httpx.Client(base_url=stack.local_url, headers={"Authorization": f"Bearer {key}"}, timeout=30), key


def upload_song(client: httpx.Client, seconds: float) -> str:
    response = client.post(
        "/api/v1/upload/base-track",
        files={"file": ("song.wav", synth_song(seconds, sr=11025), "audio/wav")},
        data={"project_name": "permissions"},
    )
    assert response.status_code == 202, response.text
    return str(response.json()["project_id"])


def job_of(stack: Any, project_id: str) -> dict[str, Any] | None:
    return next((j for j in stack.batch.jobs_summary() if j["jobName"] == f"separate-{project_id}"), None)


def access_denials(stack: Any) -> list[str]:
    errors = [str(p.stats.as_dict()["last_error"]) for p in stack.pollers if p.stats.as_dict()["last_error"]]
    errors += [d["error"] for d in stack.batch.failed_deliveries]
    return [e for e in errors if "not authorized" in e]


def test_a_song_reaches_ready_and_batch_events_can_check_the_stems(local_stack: Any) -> None:
    """Blocker 2: on SUCCEEDED, BatchEventsFunction heads the four stems; without s3:GetObject every
    delivery fails (on AWS: retries, the DLQ and both alarms after every successful job)."""
    client, _ = tenant_client(local_stack, "perm-ready")
    with client:
        project_id = upload_song(client, 4.0)
        body = wait_for(
            lambda: (
                (b := client.get(f"/api/v1/projects/{project_id}/status").json())["status"]
                in ("ready", "failed")
                and b
            ),
            180,
            "project ready",
        )
    assert body["status"] == "ready", body
    job = job_of(local_stack, project_id)
    assert job is not None
    # The project can be ready before the job's process has exited; wait() also lets the event deliver.
    assert local_stack.batch.wait(job["jobId"], 60) == "SUCCEEDED"
    failed = [d for d in local_stack.batch.failed_deliveries if d["jobId"] == job["jobId"]]
    assert failed == [], failed
    assert access_denials(local_stack) == []


def test_a_sound_subscription_connects(local_stack: Any) -> None:
    """Blocker 3: `$connect?sound_id=` reads SoundsTable; without read access $connect answered 500."""
    from websockets.sync.client import connect

    client, key = tenant_client(local_stack, "perm-sound")
    with client:
        response = client.post(
            "/api/v1/upload/style-sound", files=[("files", ("tone.flac", synth_style(), "audio/flac"))]
        )
        assert response.status_code == 202, response.text
        sound_id = response.json()["sounds"][0]["sound_id"]
    with connect(f"{local_stack.ws_url}/?sound_id={sound_id}&token={key}", open_timeout=10) as ws:
        ws.send(json.dumps({"action": "sync"}))  # WsSyncFunction reads the sound too
        event = json.loads(ws.recv(timeout=20))
    assert (event["type"], event["id"]) == ("sound", sound_id), event


def test_deleting_a_project_stops_its_running_separation_job(local_stack: Any) -> None:
    """Blocker 4: DELETE calls batch:TerminateJob; without it the deleted project's GPU job kept running."""
    client, _ = tenant_client(local_stack, "perm-delete")
    with client:
        project_id = upload_song(client, 40.0)
        job = wait_for(
            lambda: (j := job_of(local_stack, project_id)) and j["status"] == "RUNNING" and j,
            120,
            "job running",
        )
        assert client.delete(f"/api/v1/projects/{project_id}").status_code == 204
    assert local_stack.batch.wait(job["jobId"], 60) == "FAILED"
    (summary,) = [j for j in local_stack.batch.jobs_summary() if j["jobId"] == job["jobId"]]
    assert summary["statusReason"] == "project deleted", summary
