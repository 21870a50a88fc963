"""Fixtures of the API tests: an in-process moto world, tenants with API keys, a TestClient, and helpers
that put rows into the state later pipeline stages would leave them in."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from audiomixer.settings import STEMS

REGION = "us-east-1"

TEMPLATE = Path(__file__).resolve().parents[3] / "template.yaml"


def create_resources() -> dict[str, str]:
    """Every resource template.yaml declares, created in the active moto mock by the local stack's own
    code; returns the AUDIOMIXER_* environment pointing at them."""
    from audiomixer_local.resources import create_resources as from_template

    env = {name: str(value) for name, value in from_template(TEMPLATE).env.items()}
    # The pepper comes from the environment here; one test configures the SSM parameter explicitly.
    env.pop("AUDIOMIXER_API_KEY_PEPPER_PARAMETER", None)
    return env


@dataclass
class Tenant:
    tenant_id: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


_BASE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AUDIOMIXER_API_KEY_PEPPER": "test-pepper",
}


@pytest.fixture(scope="module")
def _moto_world() -> Iterator[dict[str, str]]:
    """One moto world per test module: creating resources and boto clients in a fresh mock costs about
    a second, so tests share it and `api_env` wipes the data between them."""
    from moto import mock_aws

    patcher = pytest.MonkeyPatch()
    try:
        for name in [n for n in os.environ if n.startswith("AUDIOMIXER_")]:
            patcher.delenv(name)
        for name, value in _BASE_ENV.items():
            patcher.setenv(name, value)
        patcher.delenv("AWS_ENDPOINT_URL", raising=False)
        with mock_aws():
            env = create_resources()
            for name, value in env.items():
                patcher.setenv(name, value)
            _reset()
            yield env
    finally:
        patcher.undo()
        _reset()


def _reset() -> None:
    from audiomixer import auth
    from audiomixer import aws as aws_clients

    aws_clients.reset()
    auth.reset_cache()


def _wipe(env: dict[str, str]) -> None:
    from audiomixer import aws as aws_clients

    ddb = aws_clients.client("dynamodb")
    for var in [v for v in env if v.endswith("_TABLE")]:
        schema = ddb.describe_table(TableName=env[var])["Table"]["KeySchema"]
        names = [k["AttributeName"] for k in schema]
        pages = ddb.get_paginator("scan").paginate(TableName=env[var], ProjectionExpression=", ".join(names))
        for page in pages:
            for item in page.get("Items", []):
                ddb.delete_item(TableName=env[var], Key={n: item[n] for n in names})
    s3 = aws_clients.client("s3")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=env["AUDIOMIXER_BUCKET"]):
        for obj in page.get("Contents", []):
            s3.delete_object(Bucket=env["AUDIOMIXER_BUCKET"], Key=obj["Key"])
    sqs = aws_clients.client("sqs")
    for var in [v for v in env if v.endswith("_QUEUE_URL")]:  # PurgeQueue is allowed once a minute: drain
        while batch := sqs.receive_message(QueueUrl=env[var], MaxNumberOfMessages=10).get("Messages", []):
            for message in batch:
                sqs.delete_message(QueueUrl=env[var], ReceiptHandle=message["ReceiptHandle"])


@pytest.fixture
def api_env(_moto_world: dict[str, str]) -> Iterator[dict[str, str]]:
    """Empty tables, bucket and queues. Settings and clients stay cached between tests (rebuilding the
    PynamoDB connections costs about half a second each); `configure` resets them when it changes any."""
    from audiomixer import auth

    _wipe(_moto_world)
    auth.reset_cache()
    yield _moto_world


@pytest.fixture
def configure(api_env: dict[str, str]) -> Iterator[Callable[..., None]]:
    """Change AUDIOMIXER_* settings for one test: configure(max_concurrent_jobs=1)."""
    patcher = pytest.MonkeyPatch()
    changed = False

    def apply(**settings: Any) -> None:
        nonlocal changed
        for name, value in settings.items():
            patcher.setenv(f"AUDIOMIXER_{name.upper()}", str(value))
        changed = True
        _reset()

    yield apply
    patcher.undo()
    if changed:
        _reset()


@pytest.fixture
def app(api_env: dict[str, str]) -> FastAPI:
    from audiomixer.api.app import create_app
    from audiomixer.api.deps import TokenBucketLimiter

    # Generous, so that only the burst tests (which build their own app) ever see a 429 from it.
    return create_app(limiter=TokenBucketLimiter(rate=10_000, burst=10_000))


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, follow_redirects=False) as test_client:
        yield test_client


def _tenant(tenant_id: str) -> Tenant:
    from audiomixer.auth import create_api_key

    return Tenant(tenant_id, create_api_key(tenant_id, label="tests"))


@pytest.fixture
def tenant_a(api_env: dict[str, str]) -> Tenant:
    return _tenant("tenant-a")


@pytest.fixture
def tenant_b(api_env: dict[str, str]) -> Tenant:
    return _tenant("tenant-b")


@pytest.fixture
def make_project(api_env: dict[str, str]) -> Callable[..., Any]:
    """Store a project row as the pipeline would leave it; ready projects get their stems in S3."""
    from audiomixer import aws
    from audiomixer.settings import get_settings
    from audiomixer.store import blobs, keys
    from audiomixer.store.keys import new_id
    from audiomixer.store.models import Project

    def make(
        tenant: Tenant,
        status: str = "ready",
        stems: dict[str, bool] | None = None,
        size_bytes: int = 1000,
        **fields: Any,
    ) -> Any:
        if stems is None:
            stems = dict.fromkeys(STEMS, status == "ready")
        project = Project(
            tenant.tenant_id,
            new_id(),
            name=fields.pop("name", "song"),
            status=status,
            stage=fields.pop("stage", "analyse" if status == "ready" else "upload"),
            stems=stems,
            size_bytes=size_bytes,
            quota_bytes=size_bytes,
            **fields,
        )
        project.save()
        admit_as_the_api_does(tenant.tenant_id, "project", project.project_id, status, size_bytes)
        for stem, ready in stems.items():
            if ready:
                blobs.write(
                    aws.client("s3"),
                    get_settings().bucket,
                    keys.stem(tenant.tenant_id, project.project_id, stem),
                    b"fLaC-" + stem.encode(),
                    "audio/flac",
                )
        return project

    return make


@pytest.fixture
def make_sound(api_env: dict[str, str]) -> Callable[..., Any]:
    from audiomixer.store.keys import new_id
    from audiomixer.store.models import Sound

    def make(tenant: Tenant, status: str = "ready", size_bytes: int = 500, **fields: Any) -> Any:
        sound = Sound(
            tenant.tenant_id,
            new_id(),
            name=fields.pop("name", "kick"),
            status=status,
            size_bytes=size_bytes,
            quota_bytes=size_bytes,
            duration_s=fields.pop("duration_s", 1.5),
            **fields,
        )
        sound.save()
        admit_as_the_api_does(tenant.tenant_id, "sound", sound.sound_id, "ready", size_bytes)
        return sound

    return make


def admit_as_the_api_does(tenant_id: str, kind: str, object_id: str, status: str, size_bytes: int) -> None:
    """A row stored straight into the table counts as the API counts what it admits: its bytes against the
    storage counter, and an unfinished project or mix in one of the tenant's job slots."""
    from audiomixer.settings import get_settings
    from audiomixer.store import usage

    usage.charge_bytes(tenant_id, size_bytes, 2**62)
    if kind != "sound" and status not in ("ready", "failed", "completed"):
        busy = lambda holder, taken_at: usage.Busy(holder, holder)  # noqa: E731 - every holder counts
        limit = get_settings().max_concurrent_jobs
        usage.acquire_job_slot(tenant_id, usage.holder(kind, object_id), limit, busy)


@pytest.fixture
def make_mix(api_env: dict[str, str]) -> Callable[..., Any]:
    """Store a mix row as the API would leave it (an unfinished one holds a job slot)."""
    from audiomixer.store.keys import new_id
    from audiomixer.store.models import Mix

    def make(tenant: Tenant, project_id: str, status: str = "queued", **fields: Any) -> Any:
        mix = Mix(tenant.tenant_id, new_id(), project_id=project_id, status=status, **fields)
        mix.save()
        admit_as_the_api_does(tenant.tenant_id, "mix", mix.mix_id, status, 0)
        return mix

    return make


def _bucket_keys(prefix: str = "") -> list[str]:
    from audiomixer import aws
    from audiomixer.settings import get_settings

    s3 = aws.client("s3")
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=get_settings().bucket, Prefix=prefix):
        keys.extend(o["Key"] for o in page.get("Contents", []))
    return keys


def _render_messages() -> list[dict[str, Any]]:
    import json

    from audiomixer import aws
    from audiomixer.settings import get_settings

    sqs = aws.client("sqs")
    out: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(QueueUrl=get_settings().render_queue_url, MaxNumberOfMessages=10)
        batch = got.get("Messages", [])
        if not batch:
            return out
        for message in batch:
            out.append(json.loads(message["Body"]))
            sqs.delete_message(
                QueueUrl=get_settings().render_queue_url, ReceiptHandle=message["ReceiptHandle"]
            )


@pytest.fixture
def bucket_keys(api_env: dict[str, str]) -> Callable[[str], list[str]]:
    """Every object key in the bucket under a prefix."""
    return _bucket_keys


@pytest.fixture
def render_messages(api_env: dict[str, str]) -> Callable[[], list[dict[str, Any]]]:
    """Drain the render queue; returns the message bodies."""
    return _render_messages
