"""Each Lambda handler invoked in-process with its event from tests/events/ (the shapes AWS sends),
against moto's emulation of the resources template.yaml declares."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from audiomixer import auth
from audiomixer.settings import get_settings
from audiomixer.store import blobs, keys
from audiomixer.store.models import Connection, Project
from audiomixer_local.functions import load_module

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "tests" / "events"
TENANT = "demo"
PID = "0123456789abcdef0123456789abcdef"


def event(name: str) -> dict[str, Any]:
    return copy.deepcopy(json.loads((EVENTS / f"{name}.json").read_text()))


def handler(function_dir: str) -> Any:
    return load_module(ROOT / "functions" / function_dir / "app.py").handler


def wav_bytes(seconds: float = 1.0, sr: int = 22050) -> bytes:
    t = np.arange(int(seconds * sr)) / sr
    buf = io.BytesIO()
    sf.write(buf, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), sr, format="WAV")
    return buf.getvalue()


def queue_messages(url: str) -> list[dict[str, Any]]:
    from audiomixer import aws

    response = aws.client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
    return [json.loads(m["Body"]) for m in response.get("Messages", [])]


def ingest_event(bucket: str) -> dict[str, Any]:
    e = event("ingest")
    body = json.loads(e["Records"][0]["body"])
    body["Records"][0]["s3"]["bucket"]["name"] = bucket
    e["Records"][0]["body"] = json.dumps(body)
    return e


@pytest.fixture
def s3(aws):
    from audiomixer import aws as clients

    return clients.client("s3")


def test_ingest_normalises_the_upload_and_queues_separation(aws, s3, lambda_context):
    settings = get_settings()
    Project(TENANT, PID, name="song").save()
    raw_key = keys.upload(TENANT, "base-track", PID)
    blobs.write(s3, settings.bucket, raw_key, wav_bytes())
    result = handler("ingest")(ingest_event(settings.bucket), lambda_context)
    assert result == {"batchItemFailures": []}
    project = Project.get(TENANT, PID)
    assert project.status == "queued" and project.stage == "separate" and project.content_hash
    source, sr = sf.read(io.BytesIO(blobs.read(s3, settings.bucket, keys.project_source(TENANT, PID))))
    assert sr == 44100 and source.shape == (44100, 2)
    assert not blobs.exists(s3, settings.bucket, raw_key)  # no orphaned raw upload
    assert queue_messages(settings.separate_queue_url) == [{"tenant_id": TENANT, "project_id": PID}]
    # Redelivered: nothing new happens.
    assert handler("ingest")(ingest_event(settings.bucket), lambda_context) == {"batchItemFailures": []}
    assert queue_messages(settings.separate_queue_url) == []


def test_ingest_of_a_non_audio_file_fails_the_project_with_a_reason(aws, s3, lambda_context):
    settings = get_settings()
    Project(TENANT, PID, name="song").save()
    blobs.write(s3, settings.bucket, keys.upload(TENANT, "base-track", PID), b"%PDF-1.7 not audio" * 50)
    assert handler("ingest")(ingest_event(settings.bucket), lambda_context) == {"batchItemFailures": []}
    project = Project.get(TENANT, PID)
    assert project.status == "failed" and "audio" in project.failure_reason.lower()
    assert queue_messages(settings.separate_queue_url) == []


class RecordingBatch:
    def __init__(self) -> None:
        self.submitted: list[dict[str, Any]] = []

    def get_paginator(self, name: str) -> Any:
        outer = self

        class Paginator:
            def paginate(self, **kwargs: Any) -> list[dict[str, Any]]:
                return [
                    {
                        "jobSummaryList": [
                            {"jobName": j["jobName"], "jobId": f"job-{i}", "status": "RUNNABLE"}
                            for i, j in enumerate(outer.submitted)
                        ]
                    }
                ]

        return Paginator()

    def submit_job(self, **kwargs: Any) -> dict[str, str]:
        self.submitted.append(kwargs)
        return {"jobId": f"job-{len(self.submitted) - 1}", "jobName": kwargs["jobName"]}

    def terminate_job(self, **kwargs: Any) -> None:
        raise AssertionError("no job should need terminating")


def test_dispatch_submits_one_batch_job_even_when_redelivered(aws, monkeypatch, lambda_context):
    from audiomixer import aws as clients

    batch = RecordingBatch()
    stand_in = SimpleNamespace(
        client=lambda service: batch if service == "batch" else clients.client(service)
    )
    monkeypatch.setattr("audiomixer.pipeline.dispatch.aws", stand_in)
    Project(TENANT, PID, name="song", stage="separate").save()
    for _ in range(2):
        assert handler("dispatch")(event("dispatch"), lambda_context) == {"batchItemFailures": []}
    assert len(batch.submitted) == 1
    job = batch.submitted[0]
    settings = get_settings()
    assert (
        job["jobQueue"] == settings.batch_job_queue and job["jobDefinition"] == settings.batch_job_definition
    )
    assert job["parameters"] == {
        "tenant_id": TENANT,
        "project_id": PID,
        "source_key": keys.project_source(TENANT, PID),
    }
    project = Project.get(TENANT, PID)
    assert project.status == "separating" and project.batch_job_id == "job-0"


def test_a_malformed_message_is_dropped_not_retried_forever(aws, monkeypatch, lambda_context, capsys, caplog):
    """Beside a good record in the same batch: the malformed one is logged and acknowledged (not
    reported as a failure, so it is not redelivered), while the good one is still processed."""
    from audiomixer import aws as clients

    batch = RecordingBatch()
    stand_in = SimpleNamespace(
        client=lambda service: batch if service == "batch" else clients.client(service)
    )
    monkeypatch.setattr("audiomixer.pipeline.dispatch.aws", stand_in)
    Project(TENANT, PID, name="song", stage="separate").save()
    e = event("dispatch")
    bad = copy.deepcopy(e["Records"][0])
    bad["messageId"] = "malformed-1"
    bad["body"] = '{"tenant_id": "../x", "project_id": 5}'
    e["Records"].insert(0, bad)
    capsys.readouterr()
    caplog.clear()
    assert handler("dispatch")(e, lambda_context) == {"batchItemFailures": []}
    assert [job["parameters"]["project_id"] for job in batch.submitted] == [PID]
    assert Project.get(TENANT, PID).status == "separating"
    # powertools prints JSON to stdout, or hands records to logging when pytest has taken it over
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    logged = printed + [{"message": r.getMessage(), **vars(r)} for r in caplog.records]
    assert any(
        r.get("message") == "dropping malformed message" and r.get("message_id") == "malformed-1"
        for r in logged
    ), logged


def test_batch_failure_fails_the_project_with_the_reason(aws, lambda_context):
    e = event("batch_events_failed")
    Project(TENANT, PID, name="song", status="separating", batch_job_id=e["detail"]["jobId"]).save()
    assert handler("batch_events")(e, lambda_context) == {"result": "failed"}
    reason = Project.get(TENANT, PID).failure_reason
    assert "separation job failed" in reason and "137" in reason


def test_batch_success_without_stems_fails_the_project(aws, lambda_context):
    e = event("batch_events_succeeded")
    Project(TENANT, PID, name="song", status="separating", batch_job_id=e["detail"]["jobId"]).save()
    assert handler("batch_events")(e, lambda_context) == {"result": "failed"}
    assert "stems are missing" in Project.get(TENANT, PID).failure_reason


def test_ws_connect_subscribes_owners_and_refuses_others(aws, lambda_context):
    key = auth.create_api_key(TENANT)
    Project(TENANT, PID, name="song").save()
    e = event("ws_connect")
    e["queryStringParameters"].pop("token", None)
    e["queryStringParameters"]["ticket"] = auth.issue_ws_ticket(TENANT)[0]
    assert handler("ws_connect")(e, lambda_context)["statusCode"] == 200
    connection = Connection.get(e["requestContext"]["connectionId"])
    assert connection.subscription == f"{TENANT}#project#{PID}" and connection.expires_at > 0

    stranger = copy.deepcopy(e)
    stranger["queryStringParameters"]["ticket"] = auth.issue_ws_ticket("someone-else")[0]
    assert handler("ws_connect")(stranger, lambda_context)["statusCode"] == 404
    for refused in ("wst_" + "x" * 43, e["queryStringParameters"]["ticket"]):  # forged; already used
        forged = copy.deepcopy(e)
        forged["queryStringParameters"]["ticket"] = refused
        assert handler("ws_connect")(forged, lambda_context)["statusCode"] == 401
    in_url = copy.deepcopy(e)
    del in_url["queryStringParameters"]["ticket"]
    in_url["queryStringParameters"]["token"] = key  # the API key in the URL: off by default (AWS)
    assert handler("ws_connect")(in_url, lambda_context)["statusCode"] == 401

    assert (
        handler("ws_disconnect")(
            event("ws_disconnect") | {"requestContext": e["requestContext"]}, lambda_context
        )["statusCode"]
        == 200
    )
    assert Connection.count() == 0


def test_ws_sync_posts_the_current_state(aws, monkeypatch, lambda_context):
    posts: list[tuple[str, dict[str, Any]]] = []

    class Management:
        class exceptions:
            GoneException = type("GoneException", (Exception,), {})

        def post_to_connection(self, ConnectionId: str, Data: bytes) -> None:
            posts.append((ConnectionId, json.loads(Data)))

    monkeypatch.setattr(
        "audiomixer.pipeline.websocket.aws", SimpleNamespace(management_api=lambda _: Management())
    )
    Project(TENANT, PID, name="song", status="separating", progress=40).save()
    e = event("ws_sync")
    Connection(
        e["requestContext"]["connectionId"],
        subscription=f"{TENANT}#project#{PID}",
        tenant_id=TENANT,
        expires_at=2**31,
    ).save()
    assert handler("ws_sync")(e, lambda_context)["statusCode"] == 200
    assert posts[0][0] == e["requestContext"]["connectionId"]
    assert posts[0][1]["status"] == "separating" and posts[0][1]["progress"] == 40


def test_separation_job_without_model_weights_fails_the_project_with_what_to_do(aws, monkeypatch, tmp_path):
    """The Batch entrypoint, offline, asked for htdemucs_ft whose weights are not there: the project ends
    `failed` with a reason that says how to provide weights, fast, and the job exits without a retry."""
    from audiomixer.pipeline import separate

    monkeypatch.setenv("DEMUCS_MODEL", "htdemucs_ft")
    monkeypatch.setenv("DEMUCS_REPO", str(tmp_path))  # an empty folder of weights
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    get_settings.cache_clear()
    settings = get_settings()
    Project(TENANT, PID, name="song", stage="separate", status="separating").save()
    source = keys.project_source(TENANT, PID)
    from audiomixer import aws as clients

    blobs.write(clients.client("s3"), settings.bucket, source, wav_bytes(1.0))
    code = separate.main([TENANT, PID, source])
    assert code == separate.EXIT_FAILED
    project = Project.get(TENANT, PID)
    assert project.status == "failed" and "DEMUCS_REPO" in project.failure_reason
