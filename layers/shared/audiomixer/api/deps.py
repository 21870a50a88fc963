"""Request dependencies: who is calling, per-tenant burst limiting, concurrency and storage quotas."""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Protocol

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pynamodb.exceptions import DeleteError, DoesNotExist

from audiomixer import aws
from audiomixer.api import errors
from audiomixer.auth import AuthError, Principal, principal_from_event
from audiomixer.settings import get_settings
from audiomixer.store import usage
from audiomixer.store.models import Mix, Project, Sound
from audiomixer.store.status import TERMINAL, expire_unused_upload, upload_deadline

# Per-tenant burst limit of one API process (TokenBucketLimiter, for tests and tools); the service itself
# counts requests in DynamoDB (usage.SharedRateLimiter), so the limit holds across API containers.
BURST_RATE_PER_S = 20.0
BURST_CAPACITY = 40
# What a 429 for too many concurrent jobs suggests as Retry-After: a short job takes about this long.
CONCURRENCY_RETRY_AFTER_S = 30
# A job slot is taken just before its row is written; for this long a slot without a row still counts.
NEW_JOB_GRACE_S = 30.0

_bearer = HTTPBearer(
    auto_error=False, description="API key (`am_…`) or, when deployed, a JWT verified by API Gateway"
)


class RateLimiter(Protocol):
    def acquire(self, key: str) -> float:
        """Count one request for `key`; 0 when allowed, else the seconds to wait."""


class TokenBucketLimiter:
    """An in-memory token bucket per key: `rate` tokens a second, at most `burst` saved up."""

    def __init__(
        self,
        rate: float = BURST_RATE_PER_S,
        burst: int = BURST_CAPACITY,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate, self.burst, self._clock, self._max_keys = rate, burst, clock, max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def acquire(self, key: str) -> float:
        """Take one token; returns 0 when allowed, else the seconds until a token is available."""
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.pop(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                tokens -= 1.0
                wait = 0.0
            else:
                wait = (1.0 - tokens) / self.rate
            self._buckets[key] = (tokens, now)
            while len(self._buckets) > self._max_keys:  # forget the least recently seen tenants
                self._buckets.popitem(last=False)
            return wait


def principal(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Security(_bearer)
) -> Principal:
    """The authenticated caller (JWT claims from the Lambda event, else a bearer API key), rate-limited."""
    authorization = f"Bearer {credentials.credentials}" if credentials else None
    try:
        who = principal_from_event(request.scope.get("aws.event"), authorization)
    except AuthError as exc:
        raise errors.unauthorized(str(exc)) from None
    limiter: RateLimiter | None = getattr(request.app.state, "limiter", None)
    if limiter is not None:
        wait = limiter.acquire(who.tenant_id)
        if wait > 0:
            raise errors.rate_limited("too many requests; slow down", math.ceil(wait))
    return who


def _slot_state(tenant_id: str) -> Callable[[str, float], usage.Busy | None]:
    """Whether a job slot's holder still counts: a finished, failed or deleted job does not, nor does a
    presigned upload whose form expired unused (it ends `failed` here, at the first look after expiry)."""

    def still_busy(holder: str, taken_at: float) -> usage.Busy | None:
        kind, _, object_id = holder.partition("#")
        model: type[Project] | type[Mix] = Project if kind == "project" else Mix
        try:
            item = model.get(tenant_id, object_id, consistent_read=True)
        except DoesNotExist:
            # The slot is taken just before the row is written: a young slot without a row still counts.
            if time.time() - taken_at < NEW_JOB_GRACE_S:
                return usage.Busy(holder, f"{kind} {object_id} (being created)")
            return None
        if item.status in TERMINAL:
            return None
        if isinstance(item, Project):
            if expire_unused_upload(item, aws.client("s3"), get_settings().bucket):
                return None
            deadline = upload_deadline(item)
            if deadline is not None:
                until = datetime.fromtimestamp(deadline, UTC).strftime("%H:%M:%S UTC")
                return usage.Busy(
                    holder,
                    f"project {object_id} ({item.name!r}, form valid until {until})",
                    waiting_upload=True,
                )
        return usage.Busy(holder, f"{kind} {object_id} ({item.status})")

    return still_busy


def take_job_slot(tenant_id: str, kind: str, object_id: str) -> None:
    """Count a new project or mix against the tenant's job limit, atomically; 429 naming what is in the
    way (and how to cancel the uploads that are only waiting) when the limit is reached."""
    limit = get_settings().max_concurrent_jobs
    try:
        usage.acquire_job_slot(tenant_id, usage.holder(kind, object_id), limit, _slot_state(tenant_id))
    except usage.JobLimitReached as full:
        raise errors.rate_limited(_job_limit_message(limit, full.busy), CONCURRENCY_RETRY_AFTER_S) from None


def _job_limit_message(limit: int, busy: list[usage.Busy]) -> str:
    waiting = [b.description for b in busy if b.waiting_upload]
    running = [b.description for b in busy if not b.waiting_upload]
    message = f"too many jobs in progress (limit {limit})"
    if waiting:
        message += (
            f"; {len(waiting)} upload(s) are waiting for their file: {', '.join(waiting)}. Upload the file "
            "with its form, or cancel one with DELETE /api/v1/projects/{project_id} (an unused form stops "
            "counting when it expires)"
        )
    if running:
        message += f"; in progress: {', '.join(running)}; wait for one to finish"
    return message


def release_job_slots(tenant_id: str, kind: str, *object_ids: str) -> None:
    """A deleted project or mix frees its slot at once."""
    holders = {usage.holder(kind, object_id) for object_id in object_ids}
    usage.release_job_slots(tenant_id, holders, get_settings().max_concurrent_jobs)


def charge_storage(tenant_id: str, incoming_bytes: int = 0) -> None:
    """Reserve `incoming_bytes` of the tenant's quota, atomically (403 when it does not fit); with 0, only
    refuse a tenant already over it."""
    limit = get_settings().max_stored_bytes
    try:
        usage.charge_bytes(tenant_id, incoming_bytes, limit)
    except usage.QuotaExceeded as exc:
        raise errors.quota_exceeded(
            f"storage quota exceeded: {exc.used} bytes stored, {exc.requested} more requested, limit "
            f"{limit}; delete projects or library sounds to free space"
        ) from None


@contextmanager
def admitted(tenant_id: str, size: int, job: tuple[str, str] | None = None) -> Iterator[None]:
    """Take a job slot (for `job` = (kind, id)) and reserve `size` bytes; both are given back if the
    block raises, so a request that fails half-way holds nothing."""
    if job is not None:
        take_job_slot(tenant_id, *job)
    try:
        charge_storage(tenant_id, size)
    except BaseException:
        if job is not None:
            release_job_slots(tenant_id, job[0], job[1])
        raise
    try:
        yield
    except BaseException:
        usage.refund_bytes(tenant_id, size)
        if job is not None:
            release_job_slots(tenant_id, job[0], job[1])
        raise


def expire_if_unused(item: Project | Sound) -> None:
    """An awaited upload read after its form expired ends `failed` now (the sweep does it for the rest)."""
    if upload_deadline(item) is not None:
        expire_unused_upload(item, aws.client("s3"), get_settings().bucket)


def delete_and_refund(item: Project | Sound) -> None:
    """Delete a project's or sound's row and give its reserved bytes back, once: of two deletes racing,
    only the one whose conditional delete wins refunds."""
    model = type(item)
    try:
        item.delete(condition=model.tenant_id.exists(), add_version_condition=False)
    except DeleteError as exc:
        if exc.cause_response_code != "ConditionalCheckFailedException":
            raise
        return
    usage.refund_bytes(item.tenant_id, int(item.quota_bytes or 0))
