"""Request dependencies: who is calling, per-tenant burst limiting, concurrency and storage quotas."""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from audiomixer.api import errors
from audiomixer.auth import AuthError, Principal, principal_from_event
from audiomixer.settings import get_settings
from audiomixer.store.models import Mix, Project, Sound
from audiomixer.store.status import terminal

# Per-tenant burst limit of one API process. Behind API Gateway the stage throttling is the real limit;
# this only stops one tenant from monopolising a warm container or the local server.
BURST_RATE_PER_S = 20.0
BURST_CAPACITY = 40
# What a 429 for too many concurrent jobs suggests as Retry-After: a short job takes about this long.
CONCURRENCY_RETRY_AFTER_S = 30

_bearer = HTTPBearer(
    auto_error=False, description="API key (`am_…`) or, when deployed, a JWT verified by API Gateway"
)


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
    limiter: TokenBucketLimiter | None = getattr(request.app.state, "limiter", None)
    if limiter is not None:
        wait = limiter.acquire(who.tenant_id)
        if wait > 0:
            raise errors.rate_limited("too many requests; slow down", math.ceil(wait))
    return who


def active_jobs(tenant_id: str) -> int:
    """Projects still in the pipeline plus mixes still rendering. A presigned upload whose form expired
    unused is not a job (its row waits for DynamoDB's TTL)."""
    abandoned = (Project.stage == "upload") & (Project.expires_at < int(time.time()))
    in_flight = ~Project.status.is_in(*terminal(Project)) & ~abandoned
    projects = Project.count(tenant_id, filter_condition=in_flight)
    mixes = Mix.count(tenant_id, filter_condition=~Mix.status.is_in(*terminal(Mix)))
    return int(projects) + int(mixes)


def stored_bytes(tenant_id: str) -> int:
    total = 0
    for model in (Project, Sound, Mix):
        for item in model.query(tenant_id, attributes_to_get=["size_bytes"]):
            total += int(getattr(item, "size_bytes", 0) or 0)
    return total


def check_concurrency(tenant_id: str) -> None:
    limit = get_settings().max_concurrent_jobs
    if active_jobs(tenant_id) >= limit:
        raise errors.rate_limited(
            f"too many jobs in progress (limit {limit}); wait for one to finish", CONCURRENCY_RETRY_AFTER_S
        )


def check_storage(tenant_id: str, incoming_bytes: int = 0) -> None:
    limit = get_settings().max_stored_bytes
    used = stored_bytes(tenant_id)
    if used + incoming_bytes > limit:
        raise errors.quota_exceeded(
            f"storage quota exceeded: {used} bytes stored, {incoming_bytes} more requested, limit {limit}; "
            "delete projects or library sounds to free space"
        )
