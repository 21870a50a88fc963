"""Reliability and security, round two (issue 16), each case through the embedded local stack (moto,
pollers, local Batch, WebSocket gateway, uvicorn): orphans left by a stage that finds its job gone, unused
presigned forms, the message of a mix on a failed project, malformed S3 events, a Batch job that outlives
its project, limits shared by every API container, what oversized and mistyped requests are told,
WebSocket tickets, and each function's own log context."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from api_client import Api, post_form
from audio_helpers import insert_ready_project, synth_song
from polling import wait_for

logging.getLogger("werkzeug").setLevel(logging.WARNING)

pytestmark = pytest.mark.timeout(300)


class World:
    def __init__(self, stack: Any) -> None:
        from audiomixer.settings import get_settings

        self.stack = stack
        self.s3 = boto3.client("s3", endpoint_url=stack.endpoint_url, region_name="us-east-1")
        self.sqs = boto3.client("sqs", endpoint_url=stack.endpoint_url, region_name="us-east-1")
        self.bucket = get_settings().bucket

    def tenant(self, name: str) -> Api:
        from audiomixer.auth import create_api_key

        tenant = f"rel-{name}-{uuid.uuid4().hex[:6]}"
        return Api(self.stack.local_url, create_api_key(tenant), tenant)

    def keys(self, prefix: str) -> list[str]:
        out: list[str] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            out.extend(o["Key"] for o in page.get("Contents", []))
        return out

    def put(self, key: str, body: bytes = b"x") -> None:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)

    def send(self, logical_id: str, body: str) -> None:
        self.sqs.send_message(QueueUrl=self.stack.res.queues[logical_id].url, MessageBody=body)

    def depth(self, logical_id: str) -> int:
        attrs = self.sqs.get_queue_attributes(
            QueueUrl=self.stack.res.queues[logical_id].url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])

    def poller(self, queue_logical_id: str) -> Any:
        return next(p for p in self.stack.pollers if p.queue.logical_id == queue_logical_id)


@pytest.fixture(scope="module")
def world(local_stack: Any) -> Iterator[World]:
    yield World(local_stack)


# --- 1. a stage that finds its job gone removes what it wrote ------------------------------------------


def _analysing_project(api: Api) -> Any:
    from audiomixer.store.models import Project

    project = insert_ready_project(api.tenant, seconds=0.5)
    project.update(actions=[Project.status.set("analysing"), Project.stage.set("analyse")])
    return project


def _case_analyse_project(world: World, api: Api) -> tuple[str, str, str]:
    from audiomixer.messages import AnalyseMessage
    from audiomixer.store import keys

    project = _analysing_project(api)
    assert api.delete(f"/api/v1/projects/{project.project_id}").status_code == 204
    # What an analysis delivery wrote after the delete had swept the prefix (the race of the report).
    world.put(keys.stem_analysis(api.tenant, project.project_id, "drums"), b"{}")
    message = AnalyseMessage(tenant_id=api.tenant, kind="project", id=project.project_id)
    return "AnalyseQueue", message.model_dump_json(), keys.project_prefix(api.tenant, project.project_id)


def _case_analyse_sound(world: World, api: Api) -> tuple[str, str, str]:
    from audiomixer.messages import AnalyseMessage
    from audiomixer.store import keys
    from audiomixer.store.models import Sound

    sound = Sound(api.tenant, keys.new_id(), name="kick", status="analysing", stage="analyse")
    sound.save()
    assert api.delete(f"/api/v1/library/{sound.sound_id}").status_code == 204
    world.put(keys.sound_analysis(api.tenant, sound.sound_id), b"{}")
    message = AnalyseMessage(tenant_id=api.tenant, kind="sound", id=sound.sound_id)
    return "AnalyseQueue", message.model_dump_json(), keys.sound_prefix(api.tenant, sound.sound_id)


def _case_render(world: World, api: Api) -> tuple[str, str, str]:
    from audiomixer.messages import RenderMessage
    from audiomixer.store import keys
    from audiomixer.store.models import Mix

    project = insert_ready_project(api.tenant, seconds=0.5)
    mix = Mix(api.tenant, keys.new_id(), project_id=project.project_id, status="rendering")
    mix.save()
    assert api.delete(f"/api/v1/projects/{project.project_id}").status_code == 204  # takes its mixes
    world.put(keys.mix_output(api.tenant, mix.mix_id, "wav"))
    message = RenderMessage(tenant_id=api.tenant, mix_id=mix.mix_id)
    return "RenderQueue", message.model_dump_json(), keys.mix_prefix(api.tenant, mix.mix_id)


def _case_ingest(world: World, api: Api) -> tuple[str, str, str]:
    from audiomixer.store import keys

    project_id = api.presign("base-track", 1000)["id"]
    assert api.delete(f"/api/v1/projects/{project_id}").status_code == 204
    # An earlier delivery normalised the source, then the delete came. The event below is the raw upload's
    # redelivery; the upload object itself is not written here: writing it fires the bucket's own
    # notification, whose ingest could remove the orphan before the test has seen it.
    world.put(keys.project_source(api.tenant, project_id))
    upload = keys.upload(api.tenant, "base-track", project_id)
    event = {
        "Records": [
            {
                "eventName": "ObjectCreated:Post",
                "s3": {"bucket": {"name": world.bucket}, "object": {"key": upload}},
            }
        ]
    }
    return "IngestQueue", json.dumps(event), keys.project_prefix(api.tenant, project_id)


STAGES = {
    "analyse-project": _case_analyse_project,
    "analyse-sound": _case_analyse_sound,
    "render": _case_render,
    "ingest": _case_ingest,
}


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_a_stage_that_finds_its_job_deleted_removes_what_was_written(world: World, stage: str) -> None:
    api = world.tenant(f"gone-{stage}")
    queue, body, prefix = STAGES[stage](world, api)
    assert world.keys(prefix), "the case must start with an orphan"
    world.send(queue, body)
    wait_for(lambda: not world.keys(prefix), 30, f"{stage} to remove {prefix}")
    wait_for(lambda: world.depth(queue) == 0, 30, f"{queue} to drain")


def test_a_separation_job_for_a_deleted_project_removes_what_is_left(world: World) -> None:
    from audiomixer.settings import get_settings
    from audiomixer.store import keys

    api = world.tenant("gone-batch")
    project = _analysing_project(api)
    assert api.delete(f"/api/v1/projects/{project.project_id}").status_code == 204
    checkpoint = keys.checkpoints_prefix(api.tenant, project.project_id) + "/chunk-0000.npz"
    world.put(checkpoint)
    settings = get_settings()
    batch = boto3.client("batch", endpoint_url=world.stack.endpoint_url, region_name="us-east-1")
    job_id = batch.submit_job(
        jobName=f"separate-{project.project_id}",
        jobQueue=settings.batch_job_queue,
        jobDefinition=settings.batch_job_definition,
        parameters={
            "tenant_id": api.tenant,
            "project_id": project.project_id,
            "source_key": keys.project_source(api.tenant, project.project_id),
        },
    )["jobId"]
    wait_for(lambda: _job(world, job_id)["status"] in ("SUCCEEDED", "FAILED"), 120, "the job to end")
    assert _job(world, job_id)["status"] == "SUCCEEDED"
    assert world.keys(keys.project_prefix(api.tenant, project.project_id)) == []


def _job(world: World, job_id: str) -> dict[str, Any]:
    assert world.stack.batch is not None
    return next(j for j in world.stack.batch.jobs_summary() if j["jobId"] == job_id)


# --- 3. a mix on a failed project says why and what to do ---------------------------------------------


def test_mix_on_a_failed_project_says_why_it_failed_and_what_to_do(world: World) -> None:
    from audiomixer.store.models import Project

    api = world.tenant("failed-mix")
    project = insert_ready_project(api.tenant, seconds=0.5)
    reason = "the uploaded file is not audio (it looks like a PNG image); upload an audio file"
    project.update(actions=[Project.status.set("failed"), Project.failure_reason.set(reason)])
    response = api.post("/api/v1/mix", json={"project_id": project.project_id})
    assert response.status_code == 409
    message = response.json()["error"]["message"]
    assert reason in message
    assert "wait" not in message
    assert "upload the song again" in message


# --- 4. malformed S3 events are dropped, not retried ----------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"Records": "nope"},
        {"Records": [{"eventName": "ObjectCreated:Put"}]},
        {"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {}}}]},
        {"Records": [7]},
        {
            "Records": [
                {"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": 1}, "object": {"key": []}}}
            ]
        },
    ],
    ids=["records-not-a-list", "record-without-s3", "s3-without-key", "record-not-an-object", "wrong-types"],
)
def test_malformed_s3_events_are_dropped_and_logged_not_retried(world: World, body: Any) -> None:
    poller = world.poller("IngestQueue")
    before = poller.stats.as_dict()
    dlq_before = world.depth("IngestDLQ")
    world.send("IngestQueue", json.dumps(body))
    wait_for(
        lambda: poller.stats.as_dict()["succeeded"] > before["succeeded"], 30, "the message to be consumed"
    )
    after = poller.stats.as_dict()
    assert after["failed"] == before["failed"], "the message was returned to the queue for a retry"
    assert world.depth("IngestQueue") == 0
    assert world.depth("IngestDLQ") == dlq_before


# --- 5. a Batch job stops when its project failed, and keeps no stems -------------------------------------


def test_a_separation_job_stops_when_its_project_fails_and_keeps_no_stems(world: World) -> None:
    from audiomixer.pipeline.failures import fail_stored
    from audiomixer.store import keys
    from audiomixer.store.models import Project

    api = world.tenant("batch-fail")
    song = synth_song(seconds=40.0)
    form = api.presign("base-track", len(song))
    assert post_form(form, song).status_code == 204
    project_id = form["id"]

    def chunks_done() -> bool:
        body = api.get(f"/api/v1/projects/{project_id}/status").json()
        assert body["status"] in ("queued", "separating"), body
        return body["status"] == "separating" and body["progress"] > 2

    wait_for(chunks_done, 120, "separation to finish a chunk")
    # What batch_events does with a FAILED event for this project's job (the job itself runs on).
    reason = "separation job failed: Host EC2 terminated after 1 attempt(s); upload the song again"
    assert fail_stored(Project, api.tenant, project_id, reason, "separate")
    job = wait_for(
        lambda: next(
            (j for j in world.stack.batch.jobs_summary() if j["parameters"]["project_id"] == project_id), None
        ),
        10,
        "the job record",
    )
    wait_for(lambda: _job(world, job["jobId"])["status"] in ("SUCCEEDED", "FAILED"), 120, "the job to stop")
    prefix = keys.project_prefix(api.tenant, project_id)
    left = world.keys(prefix)
    assert not [k for k in left if "/stems/" in k or "/checkpoints/" in k], left
    assert api.get(f"/api/v1/projects/{project_id}/status").json()["status"] == "failed"


# --- 9. each function logs with its own context -----------------------------------------------------------


def test_each_function_logs_with_its_own_context(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from aws_lambda_powertools import Logger

    from audiomixer.messages import AnalyseMessage
    from audiomixer.pipeline import analyse
    from audiomixer.store import keys
    from audiomixer_local import functions

    res = world.stack.res
    analyse_fn, events_fn = res.function("AnalyseFunction"), res.function("BatchEventsFunction")
    entered, other_done = threading.Event(), threading.Event()

    def slow_failure(message: Any, **_: Any) -> str:
        entered.set()
        other_done.wait(10)
        raise RuntimeError("analysis broke")

    monkeypatch.setattr(analyse, "analyse", slow_failure)
    records: list[dict[str, Any]] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(json.loads(self.format(record)))

    capture = Capture()
    capture.setFormatter(Logger(service="audiomixer").registered_formatter)
    logging.getLogger("audiomixer").addHandler(capture)
    try:
        body = AnalyseMessage(tenant_id="rel-logs", kind="project", id=keys.new_id()).model_dump_json()
        message = {
            "MessageId": str(uuid.uuid4()),
            "ReceiptHandle": "r",
            "Body": body,
            "Attributes": {"ApproximateReceiveCount": "1"},
        }
        from audiomixer_local.pollers import sqs_record

        event = {"Records": [sqs_record(message, res.queues["AnalyseQueue"].arn, res.region)]}

        def run_analyse() -> None:
            # Every record of the batch fails, so powertools raises BatchProcessingError: expected here.
            with pytest.raises(Exception, match="All records failed"):
                functions.invoke(analyse_fn, event)

        worker = threading.Thread(target=run_analyse)
        worker.start()
        assert entered.wait(10)
        functions.invoke(events_fn, {"detail": {"status": "FAILED", "jobId": "j"}})  # logs a warning
        other_done.set()
        worker.join(20)
    finally:
        logging.getLogger("audiomixer").removeHandler(capture)
    failed = [r for r in records if r.get("message") == "record failed"]
    assert failed, records
    assert {r.get("function_name") for r in failed} == {analyse_fn.name}
    ignored = [r for r in records if r.get("message") == "batch event without our parameters"]
    assert ignored and {r.get("function_name") for r in ignored} == {events_fn.name}


# --- 1 (the rest). the periodic sweep -------------------------------------------------------------------


def _backdate(item: Any, seconds: float) -> None:
    """Move a row's creation into the past: what the passage of time does to an unused form."""
    from datetime import timedelta

    item.update(actions=[type(item).created_at.set(item.created_at - timedelta(seconds=seconds))])


@pytest.fixture
def sweep_everything(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Let the local stack's scheduled sweep take objects of any age (15 minutes in production)."""
    from audiomixer.settings import get_settings

    monkeypatch.setenv("AUDIOMIXER_SWEEP_MIN_AGE_S", "0")
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


def test_the_scheduled_sweep_deletes_objects_without_a_row_and_ends_expired_forms(
    world: World, sweep_everything: None
) -> None:
    from audiomixer.store import keys
    from audiomixer.store.models import Project

    schedule = next(s for s in world.stack.schedules if s.spec.logical_id == "SweepFunction")
    api = world.tenant("sweep")
    live = insert_ready_project(api.tenant, seconds=0.5)
    live_keys = world.keys(keys.project_prefix(api.tenant, live.project_id))
    orphans = [
        keys.stem(api.tenant, keys.new_id(), "drums"),
        keys.stem_analysis(api.tenant, keys.new_id(), "bass"),
        keys.sound_audio(api.tenant, keys.new_id()),
        keys.mix_output(api.tenant, keys.new_id(), "wav"),
        keys.upload(api.tenant, "base-track", keys.new_id()),
    ]
    for key in orphans:
        world.put(key)
    form = api.presign("base-track", 1000)
    project = Project.get(api.tenant, form["id"])
    _backdate(project, 16 * 60)
    runs = schedule.invocations
    wait_for(lambda: schedule.invocations >= runs + 2, 60, "two runs of the scheduled sweep")
    assert schedule.errors == 0
    for key in orphans:
        assert world.keys(key) == [], key
    assert world.keys(keys.project_prefix(api.tenant, live.project_id)) == live_keys
    project.refresh(consistent_read=True)
    assert project.status == "failed" and "upload never arrived" in (project.failure_reason or "")


def test_own_stems_whose_forms_expire_with_a_stem_missing_fail_naming_it(world: World) -> None:
    from audiomixer.settings import get_settings
    from audiomixer.store.models import Project

    api = world.tenant("stems-missing")
    song = synth_song(1.0)
    sizes = {"drums": len(song), "bass": len(song)}
    response = api.post(
        "/api/v1/uploads",
        json={
            "filename": "my-stems",
            "content_type": "audio/wav",
            "size": sum(sizes.values()),
            "kind": "stems",
            "stems": sizes,
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert post_form({"upload": body["stem_uploads"]["drums"]}, song).status_code in (200, 201, 204)
    project = Project.get(api.tenant, body["id"])
    wait_for(
        lambda: project.refresh(consistent_read=True) or project.stems.as_dict().get("drums"),
        60,
        "the drums stem to be ingested",
    )
    assert project.status == "queued"  # still waiting for the bass
    from audiomixer.store import keys

    raw = keys.upload(api.tenant, "stem", body["id"], "drums").rsplit("/", 1)[0] + "/"
    wait_for(lambda: world.keys(raw) == [], 60, "ingest to remove the raw drums upload")
    _backdate(project, get_settings().presign_expiry_s + 1)
    status = api.get(f"/api/v1/projects/{body['id']}/status").json()
    assert status["status"] == "failed", status
    assert status["error"].startswith("stem bass never arrived"), status["error"]
    assert "drums" not in status["error"]


# --- 2. unused presigned forms stop counting, and the 429 says how to free a slot --------------------------


def test_unused_forms_stop_counting_when_they_expire_and_the_429_names_them(world: World) -> None:
    from audiomixer.settings import get_settings
    from audiomixer.store.models import Project

    api = world.tenant("forms")
    limit = get_settings().max_concurrent_jobs
    forms = [api.presign("base-track", 1000, filename=f"song{i}.wav") for i in range(limit)]
    # One upload S3 refuses (larger than the form allows): it never arrives either.
    assert post_form(forms[0], b"x" * 2000).status_code == 400
    refused = api.post(
        "/api/v1/uploads", json={"filename": "x.wav", "content_type": "audio/wav", "size": 1000}
    )
    assert refused.status_code == 429
    message = refused.json()["error"]["message"]
    for form in forms:
        assert form["id"] in message
    assert "DELETE /api/v1/projects/" in message
    assert "form valid until" in message

    assert api.delete(f"/api/v1/projects/{forms[1]['id']}").status_code == 204  # cancel one: a slot frees
    again = api.presign("base-track", 1000)

    for form in [*forms[:1], *forms[2:], again]:
        _backdate(Project.get(api.tenant, form["id"]), get_settings().presign_expiry_s + 1)
    for _ in range(limit):  # every expired form stopped counting
        api.presign("base-track", 1000)
    status = api.get(f"/api/v1/projects/{forms[0]['id']}/status").json()
    assert status["status"] == "failed"
    assert "upload never arrived" in status["error"]


# --- 6. limits hold across threads and API containers ------------------------------------------------------


def test_the_job_limit_holds_against_racing_requests(world: World) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from audiomixer.settings import get_settings

    api = world.tenant("race-jobs")
    limit = get_settings().max_concurrent_jobs
    body = {"filename": "a.wav", "content_type": "audio/wav", "size": 1000}
    barrier = threading.Barrier(3 * limit)

    def one(_: int) -> int:
        barrier.wait(10)
        return api.http.post("/api/v1/uploads", json=body).status_code

    with ThreadPoolExecutor(3 * limit) as pool:
        codes = list(pool.map(one, range(3 * limit)))
    assert sorted(codes) == [201] * limit + [429] * (2 * limit), codes


def test_the_storage_quota_holds_against_racing_requests(world: World) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from audiomixer.settings import get_settings

    settings = get_settings()
    api = world.tenant("race-bytes")
    size = settings.max_upload_bytes
    fits = settings.max_stored_bytes // size
    body = {"filename": "k.wav", "content_type": "audio/wav", "size": size, "kind": "style-sound"}
    barrier = threading.Barrier(fits + 5)

    def one(_: int) -> int:
        barrier.wait(10)
        return api.http.post("/api/v1/uploads", json=body).status_code

    with ThreadPoolExecutor(fits + 5) as pool:
        codes = list(pool.map(one, range(fits + 5)))
    assert sorted(codes) == [201] * fits + [403] * 5, codes


def test_the_request_limit_is_shared_by_api_containers(world: World) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from fastapi.testclient import TestClient

    from audiomixer.api.app import create_app
    from audiomixer.store.usage import SharedRateLimiter

    api = world.tenant("race-rate")
    burst = 8
    # Two containers of the API, each with its own limiter object, as two Lambda sandboxes would be.
    # A frozen clock keeps every request in one window.
    containers = [
        TestClient(create_app(limiter=SharedRateLimiter(rate=1.0, burst=burst, clock=lambda: 1_000.0)))
        for _ in range(2)
    ]
    headers = {"Authorization": f"Bearer {api.key}"}
    barrier = threading.Barrier(4 * burst)

    def one(n: int) -> int:
        barrier.wait(10)
        return containers[n % 2].get("/api/v1/projects", headers=headers).status_code

    with ThreadPoolExecutor(4 * burst) as pool:
        codes = list(pool.map(one, range(4 * burst)))
    assert sorted(codes) == [200] * burst + [429] * (3 * burst), codes


# --- 7. messages that say what to send -----------------------------------------------------------------


def test_bodies_the_gateway_cannot_carry_are_refused_as_aws_refuses_them(world: World) -> None:
    import httpx

    api = world.tenant("sizes")
    url = "/api/v1/upload/base-track"
    # Over the app's multipart limit but still carried by API Gateway + Lambda: the app's 413 and its hint.
    app_413 = api.http.post(url, files={"file": ("a.wav", b"R" * 4_300_000, "audio/wav")})
    assert app_413.status_code == 413
    assert "POST /api/v1/uploads" in app_413.json()["error"]["message"]
    # Base64 in Lambda's 6 MB invocation payload: AWS answers before the app can.
    lambda_413 = api.http.post(url, files={"file": ("a.wav", b"R" * 5 * 1024 * 1024, "audio/wav")})
    assert lambda_413.status_code == 413
    assert lambda_413.json() == {"message": "Request Too Long"}
    assert lambda_413.headers["x-amzn-errortype"] == "BadRequestException"

    # Over the HTTP API's 10 MB, chunked (no Content-Length) as well.
    def chunks() -> Iterator[bytes]:
        for _ in range(11):
            yield b"R" * 1024 * 1024

    gateway_413 = httpx.post(
        world.stack.local_url + url,
        content=chunks(),
        headers={"Authorization": f"Bearer {api.key}", "Content-Type": "multipart/form-data; boundary=x"},
        timeout=30,
    )
    assert gateway_413.status_code == 413
    assert gateway_413.text == "HTTP content length exceeded 10485760 bytes."


def test_refusals_say_what_to_send(world: World) -> None:
    api = world.tenant("messages")
    project = insert_ready_project(api.tenant, seconds=0.5)
    long_name = api.http.post(
        "/api/v1/upload/base-track", files={"file": ("n" * 5000 + ".wav", b"RIFF", "audio/wav")}
    )
    assert long_name.status_code == 400
    assert "file name under 4,000 characters" in long_name.json()["error"]["message"]

    form = api.http.post("/api/v1/mix", data={"project_id": project.project_id})
    assert form.status_code == 415
    assert "application/json" in form.json()["error"]["message"]

    # NaN is not JSON, but Python's parser (and so the API's) takes it.
    body = json.dumps(
        {
            "project_id": project.project_id,
            "settings": {"grain_duration_ms": True},
            "config": {"drums": {"volume": math.nan}},
        }
    )
    typed = api.http.post("/api/v1/mix", content=body, headers={"Content-Type": "application/json"})
    assert typed.status_code == 422
    message = typed.json()["error"]["message"]
    assert "settings.grain_duration_ms: send a number, not true" in message
    assert "config.drums.volume: Input should be a finite number" in message
    assert "greater than" not in message and "less than" not in message


# --- 8. WebSocket tickets ------------------------------------------------------------------------------


def _ws_status(world: World, path: str) -> int:
    """101 when the handshake is accepted, else the HTTP status of the refusal."""
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    try:
        with connect(world.stack.ws_url + path, open_timeout=10) as ws:
            json.loads(ws.recv(timeout=10))  # the seed's URLs get the current state at once
            return 101
    except InvalidStatus as exc:
        return int(exc.response.status_code)


def test_websocket_tickets_are_short_lived_single_use_and_the_only_url_credential_on_aws(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from audiomixer.settings import get_settings
    from audiomixer.store.models import WsTicket

    api, other = world.tenant("tickets"), world.tenant("tickets-other")
    project = insert_ready_project(api.tenant, seconds=0.5)
    path = f"/ws/project/{project.project_id}"

    def ticket(client: Api = api) -> str:
        response = client.post("/api/v1/ws-tickets")
        assert response.status_code == 201, response.text
        assert 0 < response.json()["expires_in"] <= 300
        return str(response.json()["ticket"])

    assert world.stack.res.functions  # the WebSocket gateway of the local stack runs $connect
    first = ticket()
    assert _ws_status(world, f"{path}?ticket={first}") == 101
    assert _ws_status(world, f"{path}?ticket={first}") == 401  # single use
    assert _ws_status(world, f"{path}?ticket={ticket(other)}") == 404  # another tenant's project
    expired = ticket()
    item = WsTicket.get("ticket#" + hashlib.sha256(expired.encode()).hexdigest())
    item.update(actions=[WsTicket.expires_at.set(int(time.time()) - 1)])
    assert _ws_status(world, f"{path}?ticket={expired}") == 401
    assert api.http.post("/api/v1/ws-tickets", headers={"Authorization": "Bearer nope"}).status_code == 401

    # On AWS (the setting's default) the API key itself is refused in the URL.
    assert _ws_status(world, f"{path}?token={api.key}") == 101  # local development allows it
    monkeypatch.setenv("AUDIOMIXER_WS_ALLOW_KEY_IN_URL", "false")
    get_settings.cache_clear()
    try:
        assert _ws_status(world, f"{path}?token={api.key}") == 401
        assert _ws_status(world, f"{path}?ticket={ticket()}") == 101
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
