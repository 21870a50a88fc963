"""Security through the whole local stack (issue 8, part 4): authentication (401 for missing, forged,
revoked and JWT-looking tokens), tenant isolation (someone else's id is a 404 for every resource type,
WebSocket subscriptions included), presigned uploads and downloads bound to the caller's own keys, the CORS
allow-list, the per-tenant burst limiter (429 + Retry-After), and S3 keys built from ids only."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import boto3
import httpx
import pytest
from api_client import Api, load_data_module, post_form, tone_wav
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

DATA = Path(__file__).resolve().parents[1] / "data"
ALLOWED_ORIGIN = "http://localhost:3000"  # settings.cors_allow_origins' default
EVIL_ORIGIN = "https://evil.example"


KEY_PATTERNS = load_data_module("hostile_requests", DATA / "hostile_requests.py").S3_KEY_PATTERNS


@dataclass
class World:
    stack: Any
    alice: Api
    mallory: Api
    project: str  # alice's, ready
    sound: str  # alice's, ready
    mix: str  # alice's, completed
    mallory_project: str  # mallory's, ready
    s3: Any
    bucket: str

    def bucket_keys(self, prefix: str = "") -> list[str]:
        out: list[str] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            out.extend(o["Key"] for o in page.get("Contents", []))
        return out


def _ready_stems_project(tenant: Api, freq: float) -> str:
    response = tenant.request(
        "POST",
        "/api/v1/upload/stems",
        files={
            "drums": ("d.wav", tone_wav(1.0, freq), "audio/wav"),
            "bass": ("b.wav", tone_wav(1.0, freq / 2), "audio/wav"),
        },
    )
    assert response.status_code == 202, response.text
    project_id = str(response.json()["project_id"])
    assert tenant.wait(f"/api/v1/projects/{project_id}/status", timeout=120)["status"] == "ready"
    return project_id


@pytest.fixture(scope="module")
def world(local_stack: Any) -> Iterator[World]:
    from audiomixer.auth import create_api_key

    suffix = uuid.uuid4().hex[:6]
    alice_id, mallory_id = f"sec-alice-{suffix}", f"sec-mallory-{suffix}"
    alice = Api(local_stack.local_url, create_api_key(alice_id), alice_id)
    mallory = Api(local_stack.local_url, create_api_key(mallory_id), mallory_id)
    project = _ready_stems_project(alice, 220.0)
    response = alice.request(
        "POST",
        "/api/v1/upload/style-sound",
        files=[("files", ("kick.wav", tone_wav(0.5, 80.0), "audio/wav"))],
    )
    sound = response.json()["sounds"][0]["sound_id"]
    assert alice.wait(f"/api/v1/library/{sound}", timeout=120)["status"] == "ready"
    response = alice.request(
        "POST", "/api/v1/mix", json={"project_id": project, "config": {"drums": {"style_sound_id": sound}}}
    )
    assert response.status_code == 202, response.text
    mix = response.json()["mix_id"]
    assert alice.wait(f"/api/v1/mix/{mix}", timeout=120)["status"] == "completed"
    endpoint = local_stack.endpoint_url
    yield World(
        stack=local_stack,
        alice=alice,
        mallory=mallory,
        project=project,
        sound=sound,
        mix=mix,
        mallory_project=_ready_stems_project(mallory, 330.0),
        s3=boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1"),
        bucket=local_stack.res.env["AUDIOMIXER_BUCKET"],
    )
    alice.http.close()
    mallory.http.close()


def _envelope(response: httpx.Response, code: str) -> str:
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    return str(body["error"]["message"])


def _endpoints(w: World) -> list[tuple[str, str, dict[str, Any]]]:
    """Every route that touches a tenant's data, aimed at alice's resources."""
    return [
        ("GET", "/api/v1/projects", {}),
        ("GET", f"/api/v1/projects/{w.project}", {}),
        ("GET", f"/api/v1/projects/{w.project}/status", {}),
        ("GET", f"/api/v1/projects/{w.project}/stems/drums", {}),
        ("DELETE", f"/api/v1/projects/{w.project}", {}),
        ("GET", "/api/v1/library", {}),
        ("GET", f"/api/v1/library/{w.sound}", {}),
        ("DELETE", f"/api/v1/library/{w.sound}", {}),
        ("GET", "/api/v1/mixes", {}),
        ("GET", f"/api/v1/mix/{w.mix}", {}),
        ("GET", f"/api/v1/mix/{w.mix}/download", {}),
        ("POST", "/api/v1/mix", {"json": {"project_id": w.project}}),
        (
            "POST",
            "/api/v1/uploads",
            {"json": {"filename": "a.wav", "content_type": "audio/wav", "size": 10, "kind": "base-track"}},
        ),
        ("POST", "/api/v1/upload/base-track", {"files": {"file": ("a.wav", b"RIFF0000WAVE", "audio/wav")}}),
        ("POST", "/api/v1/upload/style-sound", {"files": {"files": ("a.wav", b"RIFF0000WAVE", "audio/wav")}}),
        ("POST", "/api/v1/upload/stems", {"files": {"drums": ("a.wav", b"RIFF0000WAVE", "audio/wav")}}),
    ]


def _jwt_looking() -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    claims = {"sub": "attacker", "custom:tenant": "sec-alice", "exp": 4102444800}
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}.{part({'sig': 'forged'})}"


def _revoked_key() -> str:
    from audiomixer.auth import authenticate, create_api_key, revoke_api_key

    key = create_api_key(f"sec-revoked-{uuid.uuid4().hex[:6]}")
    assert authenticate(key).method == "api_key"  # it worked until now
    assert revoke_api_key(key)
    return key


BAD_CREDENTIALS: dict[str, Any] = {
    "no_header": None,
    "empty_bearer": "Bearer",
    "forged_key": "Bearer am_" + "A" * 43,
    "key_too_short": "Bearer am_abc",
    "revoked_key": "revoked",
    "jwt_looking_unverified": "jwt",
    "basic_auth": "Basic " + base64.b64encode(b"dev:password").decode(),
    "key_without_scheme": "am_" + "B" * 43,
    "sql_injection": "Bearer ' OR '1'='1",
}


@pytest.mark.parametrize("label", list(BAD_CREDENTIALS), ids=list(BAD_CREDENTIALS))
def test_every_route_refuses_bad_credentials_with_401(world: World, label: str) -> None:
    value = BAD_CREDENTIALS[label]
    if value == "revoked":
        value = f"Bearer {_revoked_key()}"
    elif value == "jwt":
        # Claims count only when API Gateway verified them (requestContext.authorizer); a JWT in the header
        # of the local server (no authorizer) is just an invalid key.
        value = f"Bearer {_jwt_looking()}"
    headers = {} if value is None else {"Authorization": value}
    client = httpx.Client(base_url=world.stack.local_url, timeout=30)
    for method, url, kwargs in _endpoints(world):
        response = client.request(method, url, headers=headers, **kwargs)
        assert response.status_code == 401, (label, method, url, response.status_code, response.text)
        _envelope(response, "unauthorized")
        assert response.headers.get("www-authenticate", "").lower().startswith("bearer")
    client.close()
    # Nothing the refused calls aimed at changed.
    assert world.alice.request("GET", f"/api/v1/projects/{world.project}").json()["status"] == "ready"
    assert world.alice.request("GET", f"/api/v1/library/{world.sound}").status_code == 200


def test_health_and_docs_need_no_token(world: World) -> None:
    assert httpx.get(f"{world.stack.local_url}/health").json() == {"status": "ok"}
    assert httpx.get(f"{world.stack.local_url}/openapi.json").status_code == 200


# ------------------------------------------------------------------------------------------------
# Api isolation
# ------------------------------------------------------------------------------------------------


def test_someone_elses_ids_are_404_for_every_resource(world: World) -> None:
    alice, mallory = world.alice, world.mallory
    pairs: list[tuple[str, str, dict[str, Any], int]] = [
        ("GET", f"/api/v1/projects/{world.project}", {}, 200),
        ("GET", f"/api/v1/projects/{world.project}/status", {}, 200),
        ("GET", f"/api/v1/projects/{world.project}/stems/drums", {"follow_redirects": False}, 307),
        ("GET", f"/api/v1/library/{world.sound}", {}, 200),
        ("GET", f"/api/v1/mix/{world.mix}", {}, 200),
        ("GET", f"/api/v1/mix/{world.mix}/download", {"follow_redirects": False}, 307),
    ]
    for method, url, kwargs, owner_status in pairs:
        # The owner gets it (so the 404 is about the tenant, not the state), the other tenant gets a 404.
        assert alice.request(method, url, **kwargs).status_code == owner_status, url
        response = mallory.request(method, url, **kwargs)
        assert response.status_code == 404, (url, response.status_code, response.text)
        message = _envelope(response, "not_found")
        assert alice.tenant not in message
    for url in (f"/api/v1/projects/{world.project}", f"/api/v1/library/{world.sound}"):
        response = mallory.request("DELETE", url)
        assert response.status_code == 404, (url, response.text)
    # A mix of alice's project, or of mallory's project with alice's sound: 404, nothing queued.
    for body in (
        {"project_id": world.project},
        {"project_id": world.mallory_project, "config": {"drums": {"style_sound_id": world.sound}}},
    ):
        response = mallory.request("POST", "/api/v1/mix", json=body)
        assert response.status_code == 404, (body, response.text)
    assert mallory.request("GET", "/api/v1/mixes").json()["items"] == []
    listed = {
        "projects": [p["project_id"] for p in mallory.request("GET", "/api/v1/projects").json()["items"]],
        "library": [s["sound_id"] for s in mallory.request("GET", "/api/v1/library").json()["items"]],
    }
    assert listed == {"projects": [world.mallory_project], "library": []}
    # Alice's things survived the foreign DELETEs, objects included.
    assert alice.request("GET", f"/api/v1/projects/{world.project}/status").json()["status"] == "ready"
    assert alice.request("GET", f"/api/v1/library/{world.sound}").json()["status"] == "ready"
    stems = world.bucket_keys(f"{alice.tenant}/projects/{world.project}/stems/")
    assert len(stems) == 2, stems
    assert len(world.bucket_keys(f"{alice.tenant}/library/{world.sound}/")) == 2


def test_a_cursor_cannot_reach_another_tenants_rows(world: World) -> None:
    # A cursor names an id only; the tenant always comes from the token. Alice's id as a cursor gives
    # mallory nothing of alice's.
    cursor = base64.urlsafe_b64encode(json.dumps({"id": world.project}).encode()).decode().rstrip("=")
    page = world.mallory.request("GET", "/api/v1/projects", params={"cursor": cursor}).json()
    assert world.project not in [p["project_id"] for p in page["items"]]


def _ws(world: World, path: str) -> Any:
    return connect(f"{world.stack.ws_url}{path}", open_timeout=10)


def test_websocket_refuses_foreign_and_unauthenticated_subscriptions(world: World) -> None:
    m, a = world.mallory.key, world.alice.key
    refused = {
        f"/ws/project/{world.project}?token={m}": 404,
        f"/ws/mix/{world.mix}?token={m}": 404,
        f"/?sound_id={world.sound}&token={m}": 404,
        f"/?project_id={world.project}&token={m}": 404,
        f"/ws/project/{world.project}?token=am_{'C' * 43}": 401,
        f"/ws/project/{world.project}": 401,
        f"/ws/mix/{world.mix}?token={_revoked_key()}": 401,
        f"/ws/project/{world.project}?token={_jwt_looking()}": 401,
        f"/ws/project/..%2F..%2Fetc?token={a}": 404,
    }
    for path, status in refused.items():
        with pytest.raises(InvalidStatus) as denied, _ws(world, path):
            pass
        assert denied.value.response.status_code == status, path
    # The owner is let in and gets the current state at once.
    with _ws(world, f"/ws/project/{world.project}?token={a}") as ws:
        event = json.loads(ws.recv(timeout=10))
    assert (event["type"], event["id"], event["status"]) == ("project", world.project, "ready")
    with _ws(world, f"/ws/mix/{world.mix}?token={a}") as ws:
        assert json.loads(ws.recv(timeout=10))["status"] == "completed"


# ------------------------------------------------------------------------------------------------
# Presigned uploads and downloads
# ------------------------------------------------------------------------------------------------


def test_presigned_post_policy_binds_the_exact_key_type_and_size(world: World) -> None:
    form = world.alice.presign("base-track", 5000, "x.wav")
    fields = form["upload"]["fields"]
    key = f"uploads/{world.alice.tenant}/base-track/{form['id']}"
    assert fields["key"] == key
    policy = json.loads(base64.b64decode(fields["policy"]))
    conditions = policy["conditions"]
    # An exact-match condition on the key (not starts-with): S3 refuses the form for any other key.
    assert {"key": key} in conditions
    assert not [c for c in conditions if isinstance(c, list) and c[0] == "starts-with"]
    assert ["content-length-range", 1, 5000] in conditions
    assert {"Content-Type": "audio/wav"} in conditions
    assert {"bucket": world.bucket} in conditions
    expires = datetime.strptime(policy["expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert 0 < (expires - datetime.now(UTC)).total_seconds() <= form["expires_in"] + 5
    assert fields.get("x-amz-signature")


def test_form_posted_with_another_key_creates_nothing(world: World) -> None:
    """S3 (and the local stack, which checks POST policies as S3 does) refuses a form used for another key.
    Should an object land at such a key anyway (a leaked credential, a policy mistake), ingest's own
    defence must hold: the object is removed, and no row or object of any tenant comes of it."""
    form = world.alice.presign("base-track", 5000, "x.wav")
    for key in (
        f"uploads/{world.mallory.tenant}/base-track/{uuid.uuid4().hex}",
        f"uploads/{world.alice.tenant}/style-sound/{uuid.uuid4().hex}",
        f"uploads/nobody/base-track/{uuid.uuid4().hex}",
    ):
        response = post_form(form, tone_wav(0.2, 440.0), key, "x.wav")
        assert response.status_code in (400, 403), response.status_code
        assert not world.bucket_keys(key), "the refused form wrote an object"
        # Past the policy check: the object lands as if S3 had accepted it, and its event reaches ingest.
        world.s3.put_object(Bucket=world.bucket, Key=key, Body=tone_wav(0.2, 440.0), ContentType="audio/wav")
        deadline = time.monotonic() + 30
        while world.bucket_keys(key):
            assert time.monotonic() < deadline, f"{key} stayed in the bucket: ingest did not remove it"
            time.sleep(0.2)
        tenant, _kind, object_id = key.split("/")[1:4]
        assert not [k for k in world.bucket_keys(f"{tenant}/") if object_id in k]
        assert world.alice.request("GET", f"/api/v1/projects/{object_id}/status").status_code == 404
        assert world.mallory.request("GET", f"/api/v1/projects/{object_id}/status").status_code == 404
    assert (
        world.mallory.request("GET", "/api/v1/projects").json()["items"][0]["project_id"]
        == world.mallory_project
    )
    assert world.alice.request("GET", f"/api/v1/projects/{form['id']}/status").json()["status"] == "queued"


def test_form_posted_over_another_tenants_pending_upload_is_refused(world: World) -> None:
    victim_form = world.mallory.presign("base-track", 5000, "x.wav")
    attacker_form = world.alice.presign("base-track", 5000, "x.wav")
    victim_key = victim_form["upload"]["fields"]["key"]
    response = post_form(attacker_form, tone_wav(0.2, 440.0), victim_key, "x.wav")
    assert response.status_code < 500
    deadline = time.monotonic() + 5  # an accepted object reaches ingest within a poll or two
    status = world.mallory.request("GET", f"/api/v1/projects/{victim_form['id']}/status").json()
    while status["status"] == "queued" and time.monotonic() < deadline:
        time.sleep(0.3)
        status = world.mallory.request("GET", f"/api/v1/projects/{victim_form['id']}/status").json()
    assert status["status"] == "queued", f"mallory's project took alice's upload: {status}"
    assert response.status_code in (400, 403), response.status_code


def test_download_urls_are_presigned_for_the_callers_own_keys(world: World) -> None:
    alice = world.alice
    for url, expected_key in (
        (
            f"/api/v1/projects/{world.project}/stems/drums",
            f"{alice.tenant}/projects/{world.project}/stems/drums.flac",
        ),
        (f"/api/v1/mix/{world.mix}/download", f"{alice.tenant}/mixes/{world.mix}/mix.wav"),
    ):
        response = alice.request("GET", url, follow_redirects=False)
        assert response.status_code == 307, response.text
        location = urlsplit(response.headers["location"])
        bucket, _, key = unquote(location.path).lstrip("/").partition("/")
        assert (bucket, key) == (world.bucket, expected_key)
        query = parse_qs(location.query)
        assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"] and query["X-Amz-Signature"][0]
        assert 0 < int(query["X-Amz-Expires"][0]) <= 300  # settings.download_expiry_s: short-lived
        assert query["X-Amz-SignedHeaders"] == ["host"]
        disposition = query["response-content-disposition"][0]
        assert "attachment" in disposition and (world.project in disposition or world.mix in disposition)
        fetched = httpx.get(response.headers["location"], timeout=30)
        assert fetched.status_code == 200 and len(fetched.content) > 1000


# ------------------------------------------------------------------------------------------------
# CORS, rate limits
# ------------------------------------------------------------------------------------------------


def test_cors_echoes_allowed_origin_only(world: World) -> None:
    client = world.alice.http
    allowed = client.get("/api/v1/projects", headers={"Origin": ALLOWED_ORIGIN})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "retry-after" in allowed.headers.get("access-control-expose-headers", "").lower()
    evil = client.get("/api/v1/projects", headers={"Origin": EVIL_ORIGIN})
    assert "access-control-allow-origin" not in evil.headers
    # An error answer carries the header too, or a browser could not read why it failed.
    unauth = httpx.get(f"{world.stack.local_url}/api/v1/projects", headers={"Origin": ALLOWED_ORIGIN})
    assert unauth.status_code == 401 and unauth.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    ok = httpx.options(f"{world.stack.local_url}/api/v1/mix", headers={"Origin": ALLOWED_ORIGIN, **preflight})
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "POST" in ok.headers["access-control-allow-methods"]
    refused = httpx.options(
        f"{world.stack.local_url}/api/v1/mix", headers={"Origin": EVIL_ORIGIN, **preflight}
    )
    assert refused.status_code >= 400 and "access-control-allow-origin" not in refused.headers
    assert ok.headers.get("access-control-allow-credentials") != "true" or ALLOWED_ORIGIN != "*"


def test_burst_gets_429_with_retry_after_for_that_tenant_only(world: World) -> None:
    from audiomixer.auth import create_api_key

    tenant = f"sec-burst-{uuid.uuid4().hex[:6]}"
    key = create_api_key(tenant)
    url = f"{world.stack.local_url}/api/v1/projects/not-an-id"  # authenticated, then a cheap 404
    answers: list[httpx.Response] = []
    lock = threading.Lock()

    def hammer() -> None:
        with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
            for _ in range(40):
                response = client.get(url)
                with lock:
                    answers.append(response)

    threads = [threading.Thread(target=hammer) for _ in range(6)]
    for t in threads:
        t.start()
    # While the burst runs, another tenant is not limited.
    assert world.mallory.http.get(f"/api/v1/projects/{world.mallory_project}").status_code == 200
    for t in threads:
        t.join(60)
    statuses = [r.status_code for r in answers]
    assert set(statuses) <= {404, 429}, set(statuses)
    limited = [r for r in answers if r.status_code == 429]
    assert limited, f"no 429 in a burst of {len(answers)}"
    assert statuses.count(404) >= 20  # the burst allowance was served first
    for response in limited:
        _envelope(response, "rate_limited")
        assert int(response.headers["retry-after"]) >= 1
    time.sleep(int(limited[-1].headers["retry-after"]))
    after = httpx.get(url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert after.status_code == 404  # the tokens came back


def test_too_many_jobs_is_429_with_retry_after(world: World) -> None:
    from audiomixer.auth import create_api_key

    tenant_id = f"sec-jobs-{uuid.uuid4().hex[:6]}"
    tenant = Api(world.stack.local_url, create_api_key(tenant_id), tenant_id)
    for _ in range(5):  # settings.max_concurrent_jobs presigned uploads, none of them sent yet
        tenant.presign("base-track", 100, "x.wav")
    response = tenant.request(
        "POST", "/api/v1/uploads", json={"filename": "x.wav", "content_type": "audio/wav", "size": 100}
    )
    assert response.status_code == 429, response.text
    assert "jobs" in _envelope(response, "rate_limited")
    assert int(response.headers["retry-after"]) >= 1
    # Another tenant's jobs are its own business.
    assert world.mallory.presign("base-track", 100, "x.wav")["id"]
    tenant.http.close()


# ------------------------------------------------------------------------------------------------
# After everything: keys built from ids only
# ------------------------------------------------------------------------------------------------


def test_every_key_in_the_bucket_is_id_based_and_owned(world: World) -> None:
    from pynamodb.exceptions import DoesNotExist

    from audiomixer.store.models import Mix, Project, Sound

    deadline = time.monotonic() + 30
    while world.bucket_keys("uploads/"):  # the last presigned posts are still being ingested
        assert time.monotonic() < deadline, world.bucket_keys("uploads/")
        time.sleep(0.3)
    keys = world.bucket_keys()
    assert keys
    models = {"projects": Project, "library": Sound, "mixes": Mix}
    for key in keys:
        match = next((m for p in KEY_PATTERNS if (m := p.match(key))), None)
        assert match is not None, f"not an id-based key: {key}"
        try:
            models[match["kind"]].get(match["tenant"], match["id"])
        except DoesNotExist:
            pytest.fail(f"{key} belongs to no row")
    assert {k.split("/")[0] for k in keys} <= {world.alice.tenant, world.mallory.tenant}
