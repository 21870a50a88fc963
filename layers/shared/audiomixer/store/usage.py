"""Per-tenant limits that hold across every API container: job slots, a storage counter and request
windows, each kept atomic by one conditional write in DynamoDB (the usage table). Nothing here reads a
tenant's history: a request costs one read and one write, or a few when every slot is taken.

- Jobs: a tenant has `limit` slots; a new project or mix takes a free one with a put that succeeds only if
  the slot does not exist, or takes over one whose holder is done with a put conditional on that holder.
  Two racers can never both get the last slot.
- Storage: an ADD conditional on the counter staying within the quota.
- Requests: a fixed window counter (an ADD conditional on the count being under the window's capacity).
  API Gateway HTTP APIs have no usage plans or per-key throttling, so the count lives here."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from pynamodb.exceptions import DeleteError, PutError, UpdateError

from audiomixer.store.models import JobSlot, RequestWindow, StoredBytes


def _conflict(exc: PutError | UpdateError | DeleteError) -> bool:
    return exc.cause_response_code == "ConditionalCheckFailedException"


# --- job slots -------------------------------------------------------------------------------------------


def holder(kind: str, object_id: str) -> str:
    return f"{kind}#{object_id}"


def _slot_key(tenant_id: str, n: int) -> str:
    return f"slot#{tenant_id}#{n}"


@dataclass(frozen=True)
class Busy:
    """Why a slot's holder still counts, as a person would want it told."""

    holder: str
    description: str
    waiting_upload: bool = False


class JobLimitReached(Exception):
    def __init__(self, busy: list[Busy]) -> None:
        super().__init__(f"{len(busy)} jobs in progress")
        self.busy = busy


def acquire_job_slot(
    tenant_id: str,
    new_holder: str,
    limit: int,
    still_busy: Callable[[str, float], Busy | None],
    now: float | None = None,
) -> None:
    """Take one of the tenant's `limit` slots for `new_holder`, or raise JobLimitReached naming what holds
    them. `still_busy(holder, taken_at)` says whether a holder still counts (None: the slot may be taken
    over)."""
    now = time.time() if now is None else now
    keys = [_slot_key(tenant_id, n) for n in range(limit)]
    held = {slot.usage_key: slot for slot in JobSlot.batch_get(keys, consistent_read=True)}
    busy: list[Busy] = []
    for key in keys:
        current = held.get(key)
        if current is not None:
            state = still_busy(current.holder, float(current.taken_at))
            if state is not None:
                busy.append(state)
                continue
        condition = (
            JobSlot.usage_key.does_not_exist() if current is None else JobSlot.holder == current.holder
        )
        try:
            JobSlot(key, tenant_id=tenant_id, holder=new_holder, taken_at=now).save(condition=condition)
            return
        except PutError as exc:
            if not _conflict(exc):
                raise
            busy.append(Busy(holder="", description="a job started at the same moment"))
    raise JobLimitReached(busy)


def release_job_slots(tenant_id: str, old_holders: set[str], limit: int) -> int:
    """Free the slots that `old_holders` hold (deleted projects or mixes); returns how many."""
    keys = [_slot_key(tenant_id, n) for n in range(limit)]
    freed = 0
    for slot in JobSlot.batch_get(keys, consistent_read=True):
        if slot.holder not in old_holders:
            continue
        try:
            slot.delete(condition=JobSlot.holder == slot.holder)
            freed += 1
        except DeleteError as exc:
            if not _conflict(exc):
                raise
    return freed


# --- storage ---------------------------------------------------------------------------------------------


class QuotaExceeded(Exception):
    def __init__(self, used: int, requested: int, limit: int) -> None:
        super().__init__(f"{used} + {requested} > {limit}")
        self.used, self.requested, self.limit = used, requested, limit


def _bytes_key(tenant_id: str) -> str:
    return f"bytes#{tenant_id}"


def stored_bytes(tenant_id: str) -> int:
    try:
        return int(StoredBytes.get(_bytes_key(tenant_id), consistent_read=True).used or 0)
    except StoredBytes.DoesNotExist:
        return 0


def charge_bytes(tenant_id: str, size: int, limit: int) -> None:
    """Add `size` bytes to the tenant's counter if the total stays within `limit`; else QuotaExceeded.
    With size 0 it only checks that the tenant is not already over."""
    if size <= 0:
        used = stored_bytes(tenant_id)
        if used > limit:
            raise QuotaExceeded(used, 0, limit)
        return
    if size > limit:
        raise QuotaExceeded(stored_bytes(tenant_id), size, limit)
    item = StoredBytes(_bytes_key(tenant_id))
    try:
        item.update(
            actions=[StoredBytes.used.add(size)],
            condition=StoredBytes.used.does_not_exist() | (StoredBytes.used <= limit - size),
        )
    except UpdateError as exc:
        if not _conflict(exc):
            raise
        raise QuotaExceeded(stored_bytes(tenant_id), size, limit) from None


def refund_bytes(tenant_id: str, size: int) -> None:
    if size > 0:
        StoredBytes(_bytes_key(tenant_id)).update(actions=[StoredBytes.used.add(-size)])


# --- requests --------------------------------------------------------------------------------------------


class SharedRateLimiter:
    """`burst` requests per tenant in each window of burst / rate seconds, counted in DynamoDB so that
    every API container (Lambda runs many) draws on the same allowance. A fixed window lets up to twice
    the burst through around a window's edge; in exchange a request costs a single conditional write."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.time) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate, self.burst, self._clock = rate, burst, clock
        self.window_s = burst / rate

    def acquire(self, key: str) -> float:
        """Count one request; 0 when allowed, else the seconds until the next window opens."""
        now = self._clock()
        window = math.floor(now / self.window_s)
        ends_at = (window + 1) * self.window_s
        item = RequestWindow(f"rate#{key}#{window}")
        try:
            item.update(
                actions=[
                    RequestWindow.requests.add(1),
                    # Old windows are DynamoDB TTL's to remove (within days; never read again).
                    RequestWindow.expires_at.set(int(ends_at) + 60),
                ],
                condition=RequestWindow.requests.does_not_exist() | (RequestWindow.requests < self.burst),
            )
        except UpdateError as exc:
            if not _conflict(exc):
                raise
            return max(ends_at - now, 0.001)
        return 0.0
