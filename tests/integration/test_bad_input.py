"""Bad input through the whole local stack (issue 8, part 2): the request corpus of
tests/data/hostile_requests.py, the decode-level hostile audio corpus uploaded through the API, hostile
filenames, oversize and lying uploads, and duplicate / out-of-order / malformed queue messages sent straight
to the stack's SQS queues.

Every case ends in a 4xx or a `failed` status with a reason; never a 5xx, never a job left in a non-terminal
state, never an object in the bucket that no row accounts for. A case that reveals a bug is a strict xfail
whose reason starts with "BUG:" (it turns into a failure once the bug is fixed)."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from api_client import TERMINAL, Api, load_data_module, post_form, tone_wav

DATA = Path(__file__).resolve().parents[1] / "data"


hostile_requests = load_data_module("hostile_requests", DATA / "hostile_requests.py")
hostile_audio = load_data_module("hostile_audio_corpus", DATA / "hostile" / "make_corpus.py")

REQUEST_CASES = hostile_requests.CASES
# Cases with limit overrides are valid files under the service's real limits; the empty file never gets
# past the API (a 400, covered by the request corpus).
AUDIO_CASES = [c for c in hostile_audio.build_corpus() if not c.limits and c.data]

JOBS_PER_TENANT = 5  # settings.max_concurrent_jobs

KEY_PATTERNS = hostile_requests.S3_KEY_PATTERNS


# ------------------------------------------------------------------------------------------------
# Clients
# ------------------------------------------------------------------------------------------------


@dataclass
class World:
    stack: Any
    api: Api  # the main tenant
    other: Api  # another tenant
    tenant: str
    other_tenant: str
    ids: dict[str, str]
    new_tenant: Callable[[str], Api]
    s3: Any
    sqs: Any
    bucket: str

    def bucket_keys(self, prefix: str = "") -> list[str]:
        out: list[str] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            out.extend(o["Key"] for o in page.get("Contents", []))
        return out

    def queue_url(self, logical_id: str) -> str:
        return str(self.stack.res.queues[logical_id].url)

    def depth(self, logical_id: str) -> int:
        attrs = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url(logical_id),
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])

    def wait_drained(self, logical_ids: list[str], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            depths = {q: self.depth(q) for q in logical_ids}
            if not any(depths.values()):
                return
            assert time.monotonic() < deadline, f"queues did not drain: {depths}"
            time.sleep(0.3)

    def fill(self, value: Any) -> Any:
        """Replace the {placeholders} of the request corpus with this world's ids."""
        if isinstance(value, str):
            for name, real in self.ids.items():
                value = value.replace("{" + name + "}", real)
            return value
        if isinstance(value, dict):
            return {self.fill(k): self.fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.fill(v) for v in value]
        return value


QUEUES = ["IngestQueue", "SeparateQueue", "AnalyseQueue", "RenderQueue"]
DLQS = ["IngestDLQ", "SeparateDLQ", "AnalyseDLQ", "RenderDLQ"]


@pytest.fixture(scope="module")
def world(local_stack: Any) -> Iterator[World]:
    from audiomixer.auth import create_api_key

    suffix = uuid.uuid4().hex[:6]
    made: dict[str, Api] = {}

    def new_tenant(name: str) -> Api:
        tenant = f"bi-{name}-{suffix}"
        made[tenant] = Api(local_stack.local_url, create_api_key(tenant), tenant)
        return made[tenant]

    api, other = new_tenant("main"), new_tenant("other")
    own = api.presign("base-track", 1000)["id"]  # queued until an upload that never comes
    deleted_project = api.presign("base-track", 1000)["id"]
    assert api.delete(f"/api/v1/projects/{deleted_project}").status_code == 204
    deleted_sound = api.presign("style-sound", 1000)["id"]
    assert api.delete(f"/api/v1/library/{deleted_sound}").status_code == 204
    ids = {
        "own_project": own,
        "deleted_project": deleted_project,
        "deleted_sound": deleted_sound,
        "foreign_project": other.presign("base-track", 1000)["id"],
        "foreign_sound": other.presign("style-sound", 1000)["id"],
        "missing_id": uuid.uuid4().hex,
    }
    endpoint = local_stack.endpoint_url
    yield World(
        stack=local_stack,
        api=api,
        other=other,
        tenant=api.tenant,
        other_tenant=other.tenant,
        ids=ids,
        new_tenant=new_tenant,
        s3=boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1"),
        sqs=boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1"),
        bucket=local_stack.res.env["AUDIOMIXER_BUCKET"],
    )
    for client in made.values():
        client.http.close()


def rows(tenant: str) -> set[str]:
    from audiomixer.store.models import Mix, Project, Sound

    out = {f"project:{p.project_id}" for p in Project.query(tenant)}
    out |= {f"sound:{s.sound_id}" for s in Sound.query(tenant)}
    out |= {f"mix:{m.mix_id}" for m in Mix.query(tenant)}
    return out


def row_exists(tenant: str, kind: str, object_id: str) -> bool:
    from pynamodb.exceptions import DoesNotExist

    from audiomixer.store.models import Mix, Project, Sound

    model = {"projects": Project, "library": Sound, "mixes": Mix}[kind]
    try:
        model.get(tenant, object_id, consistent_read=True)
    except DoesNotExist:
        return False
    return True


def assert_error_envelope(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"].startswith("application/json"), response.text[:200]
    body = response.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"]["code"], str) and body["error"]["code"]
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return dict(body["error"])


# ------------------------------------------------------------------------------------------------
# The request corpus
# ------------------------------------------------------------------------------------------------


def test_request_corpus_is_big_and_named_uniquely() -> None:
    assert len(REQUEST_CASES) >= 40
    assert len({c.name for c in REQUEST_CASES}) == len(REQUEST_CASES)
    assert all(400 <= s < 500 for c in REQUEST_CASES for s in c.expect)


def _send(world: World, case: Any) -> httpx.Response:
    kwargs: dict[str, Any] = {"headers": dict(case.headers)}
    if case.json is not hostile_requests.MISSING:
        kwargs["json"] = world.fill(case.json)
    if case.content is not None:
        content = case.content
        kwargs["content"] = content.build() if isinstance(content, hostile_requests.Blob) else content
    if case.params:
        kwargs["params"] = world.fill(case.params)
    if case.data is not None:
        kwargs["data"] = world.fill(case.data)
    if case.files is not None:
        kwargs["files"] = [
            (field, (name, body.build() if isinstance(body, hostile_requests.Blob) else body, ctype))
            for field, (name, body, ctype) in case.files
        ]
    return world.api.request(case.method, world.fill(case.path), **kwargs)


@pytest.mark.parametrize("case", REQUEST_CASES, ids=[c.name for c in REQUEST_CASES])
def test_hostile_request(world: World, case: Any) -> None:
    before_rows, before_keys = rows(world.tenant), set(world.bucket_keys())
    response = _send(world, case)
    assert response.status_code < 500, f"{case.name}: {response.status_code} {response.text[:300]}"
    assert response.status_code in case.expect, f"{case.name}: {response.status_code} {response.text[:300]}"
    error = assert_error_envelope(response)
    if case.code:
        assert error["code"] == case.code, error
    for word in case.words:
        assert word.lower() in error["message"].lower(), error
    # A refused request leaves nothing behind: no row, no object.
    assert rows(world.tenant) == before_rows, case.name
    assert set(world.bucket_keys()) - before_keys == set(), case.name


def test_refused_requests_did_not_touch_the_targets(world: World) -> None:
    """The DELETEs of the corpus were refused: the foreign rows are still there, the deleted ones gone."""
    other = world.other
    assert other.get(f"/api/v1/projects/{world.ids['foreign_project']}").status_code == 200
    assert other.get(f"/api/v1/library/{world.ids['foreign_sound']}").status_code == 200
    assert world.api.get(f"/api/v1/projects/{world.ids['own_project']}").json()["status"] == "queued"
    assert not row_exists(world.tenant, "projects", world.ids["deleted_project"])


# ------------------------------------------------------------------------------------------------
# The hostile audio corpus through the API
# ------------------------------------------------------------------------------------------------


def test_hostile_audio_as_style_sounds_fails_each_with_a_reason(world: World) -> None:
    api = world.new_tenant("sounds")
    expected: dict[str, str] = {}  # sound id -> case id
    for start in range(0, len(AUDIO_CASES), 20):  # the per-request file limit
        chunk = AUDIO_CASES[start : start + 20]
        files = [("files", (c.filename, c.data, "application/octet-stream")) for c in chunk]
        response = api.post("/api/v1/upload/style-sound", files=files)
        assert response.status_code == 202, response.text
        for case, accepted in zip(chunk, response.json()["sounds"], strict=True):
            expected[accepted["sound_id"]] = case.id
    outcomes: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + 90
    while len(outcomes) < len(expected):
        assert time.monotonic() < deadline, f"stuck sounds: {set(expected) - set(outcomes)}"
        page = api.get("/api/v1/library", params={"limit": 100}).json()
        assert page["next_cursor"] is None  # one page holds the whole corpus
        for item in page["items"]:
            if item["sound_id"] in expected and item["status"] in TERMINAL:
                outcomes[item["sound_id"]] = item
        time.sleep(0.5)
    wrong = {expected[i]: (o["status"], o["error"]) for i, o in outcomes.items() if o["status"] != "failed"}
    assert not wrong, wrong
    for sound_id, outcome in outcomes.items():
        assert outcome["error"] and len(outcome["error"]) > 10, (expected[sound_id], outcome)
        assert outcome["stage"] == "ingest", outcome
    assert world.bucket_keys(f"uploads/{api.tenant}/") == []


def test_hostile_audio_as_base_tracks_fails_each_project_with_a_reason(world: World) -> None:
    """A third of the corpus (every family: non-audio, truncated per format, lying headers, bad samples) as
    songs, through multipart and, for every other one, a presigned POST straight to S3. The whole corpus
    already went through the same ingest as style sounds. At most JOBS_PER_TENANT jobs per tenant are in
    flight, so the cases are spread over tenants."""
    cases = AUDIO_CASES[::3]
    expected: dict[str, tuple[Api, str]] = {}
    for group in range(0, len(cases), JOBS_PER_TENANT):
        api = world.new_tenant(f"songs{group // JOBS_PER_TENANT}")
        for n, case in enumerate(cases[group : group + JOBS_PER_TENANT]):
            if (group + n) % 2 == 0:
                form = api.presign("base-track", len(case.data), case.filename, "application/octet-stream")
                assert post_form(form, case.data).status_code in (200, 201, 204)
                project_id = form["id"]
            else:
                response = api.post(
                    "/api/v1/upload/base-track",
                    files={"file": (case.filename, case.data, "audio/wav")},
                    data={"project_name": case.id},
                )
                assert response.status_code == 202, (case.id, response.text)
                project_id = response.json()["project_id"]
            expected[project_id] = (api, case.id)
    for project_id, (api, case_id) in expected.items():
        status = api.wait(f"/api/v1/projects/{project_id}/status", timeout=90)
        assert status["status"] == "failed", (case_id, status)
        assert status["error"] and status["stage"] == "ingest", (case_id, status)
        assert status["error"] in status["message"], status
        assert not any(status["stems"].values()), status
    assert world.bucket_keys("uploads/") == []


def test_empty_object_through_presigned_post_fails_with_reason(world: World) -> None:
    api = world.new_tenant("empty")
    form = api.presign("base-track", 100)
    response = post_form(form, b"")
    assert response.status_code < 500
    if response.status_code >= 400:  # the emulator enforced content-length-range: nothing was stored
        assert world.bucket_keys(form["upload"]["fields"]["key"]) == []
        return
    status = api.wait(f"/api/v1/projects/{form['id']}/status")
    assert status["status"] == "failed" and "empty" in status["error"].lower(), status


def test_presigned_object_larger_than_declared_is_refused_at_both_layers(world: World) -> None:
    from audiomixer import aws
    from audiomixer.settings import get_settings

    api = world.new_tenant("liar")
    declared = 1000
    form = api.presign("base-track", declared)
    assert form["max_bytes"] == declared
    body = tone_wav(1.0)
    assert len(body) > 10 * declared
    # S3 (the local stack checks the policy as AWS does) refuses the form: nothing lands.
    refused = post_form(form, body)
    assert refused.status_code == 400 and b"EntityTooLarge" in refused.content, refused.text
    assert api.get(f"/api/v1/projects/{form['id']}/status").json()["status"] == "queued"
    # Should an oversize object land anyway (an emulator that checks nothing), ingest refuses it too.
    aws.client("s3").put_object(Bucket=get_settings().bucket, Key=form["upload"]["fields"]["key"], Body=body)
    status = api.wait(f"/api/v1/projects/{form['id']}/status", done=TERMINAL | {"separating", "analysing"})
    assert status["status"] == "failed", status
    assert "declared" in status["error"] and "bytes" in status["error"], status


# ------------------------------------------------------------------------------------------------
# Hostile file names
# ------------------------------------------------------------------------------------------------

HOSTILE_NAMES = {
    "path_traversal": "../../etc/passwd.wav",
    "windows_traversal": "..\\..\\Windows\\system32\\drivers.wav",
    "absolute_path": "/var/task/app.wav",
    "url_encoded_traversal": "%2e%2e%2f%2e%2e%2fetc%2fshadow.wav",
    "control_characters": "bell\x07esc\x1b[31mred\x7f.wav",
    "crlf_header_injection": "song.wav\r\nX-Injected: yes",
    "null_byte": "song\x00.exe.wav",
    "very_long": "L" * 2000 + ".wav",
    "unicode": "Ünïcødé 音楽 🎵 שלום.wav",
    "rtl_override": "evil\u202egnp.wav",
    "dot_only": "...",
    "s3_key_like": "dev/projects/00000000000000000000000000000000/source.flac",
}


def _multipart(field: str, filename: str, body: bytes) -> tuple[bytes, str]:
    """A multipart body with the filename's bytes exactly as given (httpx would escape them)."""
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="'.encode()
        + filename.encode("utf-8", "surrogateescape")
        + b'"\r\nContent-Type: audio/wav\r\n\r\n'
    )
    return head + body + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


# Words of the service's own key layout: a filename that spells a key shares them by design.
KEY_WORDS = {
    "uploads",
    "projects",
    "library",
    "mixes",
    "source",
    "stems",
    "analysis",
    "sound",
    "flac",
    "json",
}


def _name_fragments(filename: str) -> list[str]:
    parts = re.split(r"[^0-9A-Za-z\u00c0-\uffff]+", filename)
    return [p for p in parts if len(p) >= 4 and p not in KEY_WORDS and not re.fullmatch(r"0+", p)]


@pytest.mark.parametrize("label", list(HOSTILE_NAMES), ids=list(HOSTILE_NAMES))
def test_hostile_filename_is_accepted_safely_or_refused(world: World, label: str) -> None:
    filename = HOSTILE_NAMES[label]
    api = world.api
    body, ctype = _multipart("files", filename, tone_wav(0.4))
    response = api.post("/api/v1/upload/style-sound", content=body, headers={"Content-Type": ctype})
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert_error_envelope(response)
        return
    assert response.status_code == 202, response.text
    (accepted,) = response.json()["sounds"]
    name = accepted["name"]
    assert name and len(name) <= 200, name
    assert not any(ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0 for ch in name), repr(name)
    assert "/" not in name and "\\" not in name, name
    sound = api.wait(f"/api/v1/library/{accepted['sound_id']}")
    assert sound["status"] == "ready", sound
    keys = world.bucket_keys(f"{world.tenant}/library/{accepted['sound_id']}/")
    assert sorted(k.rsplit("/", 1)[1] for k in keys) == ["analysis.json", "sound.flac"], keys
    fragments = _name_fragments(filename)
    assert not [k for k in world.bucket_keys() for f in fragments if f in k], fragments
    # A presigned upload with the same name: the form's key is built from the new id alone.
    form = api.presign("style-sound", 1000, filename=filename[:1024] or "x")
    assert form["upload"]["fields"]["key"] == f"uploads/{world.tenant}/style-sound/{form['id']}"
    assert api.delete(f"/api/v1/library/{form['id']}").status_code == 204


# ------------------------------------------------------------------------------------------------
# Queue messages sent straight to the stack's queues
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ready_project(world: World) -> dict[str, Any]:
    """A project of the main tenant that reached `ready` (own stems: no separation needed)."""
    api = world.api
    response = api.post(
        "/api/v1/upload/stems",
        files={
            "drums": ("d.wav", tone_wav(1.0, freq=110), "audio/wav"),
            "bass": ("b.wav", tone_wav(1.0), "audio/wav"),
        },
    )
    assert response.status_code == 202, response.text
    project_id = response.json()["project_id"]
    status = api.wait(f"/api/v1/projects/{project_id}/status", timeout=120)
    assert status["status"] == "ready", status
    return {"id": project_id, "status": status}


def _send_raw(world: World, queue: str, body: str) -> None:
    world.sqs.send_message(QueueUrl=world.queue_url(queue), MessageBody=body)


def _s3_event(bucket: str, key: str) -> str:
    from urllib.parse import quote_plus

    return json.dumps(
        {
            "Records": [
                {
                    "eventVersion": "2.1",
                    "eventSource": "aws:s3",
                    "awsRegion": "us-east-1",
                    "eventName": "ObjectCreated:Post",
                    "s3": {"bucket": {"name": bucket}, "object": {"key": quote_plus(key), "size": 10}},
                }
            ]
        }
    )


def test_duplicate_and_out_of_order_messages_change_nothing(
    world: World, ready_project: dict[str, Any]
) -> None:
    api, tenant = world.api, world.tenant
    ready_id, queued_id = ready_project["id"], world.ids["own_project"]
    failed = world.new_tenant("dupes")
    failed_id = failed.post(
        "/api/v1/upload/base-track", files={"file": ("x.mp3", b"not audio at all " * 64, "audio/mpeg")}
    ).json()["project_id"]
    failed_tenant = failed.tenant
    assert failed.wait(f"/api/v1/projects/{failed_id}/status")["status"] == "failed"
    before = {
        ready_id: api.get(f"/api/v1/projects/{ready_id}").json(),
        queued_id: api.get(f"/api/v1/projects/{queued_id}").json(),
        failed_id: failed.get(f"/api/v1/projects/{failed_id}").json(),
    }
    upload_key = f"uploads/{tenant}/base-track/{ready_id}"
    messages = [
        ("SeparateQueue", {"tenant_id": tenant, "project_id": ready_id}),  # a second SeparateMessage
        ("SeparateQueue", {"tenant_id": failed_tenant, "project_id": failed_id}),
        ("SeparateQueue", {"tenant_id": world.other_tenant, "project_id": ready_id}),  # wrong tenant
        ("AnalyseQueue", {"tenant_id": tenant, "kind": "project", "id": queued_id}),  # before its upload
        ("AnalyseQueue", {"tenant_id": tenant, "kind": "project", "id": ready_id}),  # after it is done
        ("AnalyseQueue", {"tenant_id": failed_tenant, "kind": "project", "id": failed_id}),
        ("AnalyseQueue", {"tenant_id": tenant, "kind": "sound", "id": world.ids["deleted_sound"]}),
        ("RenderQueue", {"tenant_id": tenant, "mix_id": uuid.uuid4().hex}),  # an unknown mix
        ("RenderQueue", {"tenant_id": tenant, "mix_id": "../../etc/passwd"}),
        ("RenderQueue", {"tenant_id": "UPPER CASE", "mix_id": uuid.uuid4().hex}),
        ("SeparateQueue", {"tenant_id": tenant, "project_id": ready_id, "extra": "field"}),
        ("IngestQueue", {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": world.bucket}),
        ("IngestQueue", json.loads(_s3_event(world.bucket, upload_key))),  # an upload consumed long ago
    ]
    for queue, body in messages:
        _send_raw(world, queue, json.dumps(body))
    for queue in ("SeparateQueue", "AnalyseQueue", "RenderQueue"):  # malformed bodies: dropped, not retried
        for raw in ("{not json", "", "null", "[]", '{"tenant_id": 1}', "\x00\x01"):
            _send_raw(world, queue, raw or " ")
    world.wait_drained(QUEUES)
    time.sleep(1.0)  # a redelivered message would be back by now (visibility timeouts are scaled down)
    world.wait_drained(QUEUES)
    assert {q: world.depth(q) for q in DLQS} == dict.fromkeys(DLQS, 0)
    after = {
        ready_id: api.get(f"/api/v1/projects/{ready_id}").json(),
        queued_id: api.get(f"/api/v1/projects/{queued_id}").json(),
        failed_id: failed.get(f"/api/v1/projects/{failed_id}").json(),
    }
    for project_id, was in before.items():
        now = after[project_id]
        assert (now["status"], now["progress"], now["stems"]) == (
            was["status"],
            was["progress"],
            was["stems"],
        )
        assert now["error"] == was["error"]
    jobs = world.stack.batch.jobs_summary()
    assert not [j for j in jobs if j["parameters"].get("project_id") in (ready_id, failed_id)], jobs


def test_s3_event_for_a_key_outside_uploads_is_ignored(world: World, ready_project: dict[str, Any]) -> None:
    """An event for a key the bucket's notification filter never sends (outside uploads/) must not touch
    that object: ingest has no business with the service's own outputs."""
    stem_key = f"{world.tenant}/projects/{ready_project['id']}/stems/drums.flac"
    assert stem_key in world.bucket_keys(stem_key)
    stray = f"uploads/{world.tenant}/base-track/not-an-id"
    world.s3.put_object(Bucket=world.bucket, Key=stray, Body=b"RIFF")  # what S3 would notify for
    for key in (stray, "uploads/../../etc/passwd"):
        _send_raw(world, "IngestQueue", _s3_event(world.bucket, key))
    world.wait_drained(["IngestQueue"])
    assert world.bucket_keys(stray) == []  # an unexpected key under uploads/ is cleaned up
    assert world.depth("IngestDLQ") == 0


def test_s3_event_for_a_stem_key_does_not_delete_the_stem(
    world: World, ready_project: dict[str, Any]
) -> None:
    stem_key = f"{world.tenant}/projects/{ready_project['id']}/stems/bass.flac"
    assert world.bucket_keys(stem_key) == [stem_key]
    _send_raw(world, "IngestQueue", _s3_event(world.bucket, stem_key))
    world.wait_drained(["IngestQueue"])
    assert world.bucket_keys(stem_key) == [stem_key], "the stem was deleted by ingest"


def test_separate_message_before_the_upload_leaves_the_project_queued(world: World) -> None:
    api = world.new_tenant("early")
    audio = tone_wav(0.1)
    form = api.presign("base-track", len(audio))
    tenant = api.tenant
    _send_raw(world, "SeparateQueue", json.dumps({"tenant_id": tenant, "project_id": form["id"]}))
    world.wait_drained(["SeparateQueue"])
    time.sleep(1.0)  # dispatch moves the project at once when it takes the message for real work
    status = api.get(f"/api/v1/projects/{form['id']}/status").json()
    assert status["status"] == "queued", status
    # The upload that was promised still works once it comes.
    assert post_form(form, audio).status_code < 300
    assert (
        api.wait(f"/api/v1/projects/{form['id']}/status", done=TERMINAL | {"separating"})["status"]
        != "failed"
    )


# ------------------------------------------------------------------------------------------------
# Deleting while work is in flight leaves nothing behind
# ------------------------------------------------------------------------------------------------


def test_delete_before_ingest_leaves_no_object(world: World) -> None:
    api = world.new_tenant("quickdel")
    response = api.post("/api/v1/upload/base-track", files={"file": ("a.wav", tone_wav(0.3), "audio/wav")})
    project_id = response.json()["project_id"]
    assert api.delete(f"/api/v1/projects/{project_id}").status_code == 204
    world.wait_drained(["IngestQueue"])
    tenant = api.tenant
    assert [k for k in world.bucket_keys() if project_id in k] == []
    assert api.get(f"/api/v1/projects/{project_id}/status").status_code == 404
    assert not row_exists(tenant, "projects", project_id)


# ------------------------------------------------------------------------------------------------
# After everything: the bucket holds only id-based keys that rows account for
# ------------------------------------------------------------------------------------------------


def test_bucket_holds_only_id_keys_with_rows(world: World) -> None:
    world.wait_drained(QUEUES, timeout=60)
    keys = world.bucket_keys()
    assert keys, "the corpus should have left some outputs"
    assert [k for k in keys if k.startswith("uploads/")] == []
    unmatched = [k for k in keys if not any(p.match(k) for p in KEY_PATTERNS)]
    assert unmatched == []
    orphans = []
    for key in keys:
        tenant, kind, object_id = key.split("/")[:3]
        if not row_exists(tenant, kind, object_id):
            orphans.append(key)
    assert orphans == []
    assert {q: world.depth(q) for q in DLQS} == dict.fromkeys(DLQS, 0)


def test_malformed_ingest_message_is_dropped_not_retried(world: World) -> None:
    _send_raw(world, "IngestQueue", "{this is not an S3 event")
    deadline = time.monotonic() + 5  # a handled message is gone within a poll or two
    while world.depth("IngestQueue"):
        assert time.monotonic() < deadline, "the malformed message is still on the ingest queue (retried)"
        time.sleep(0.3)
