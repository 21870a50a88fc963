"""Status state machines, enforced by conditional updates: a duplicate or out-of-order stage message
can never move a job backwards, and concurrent writers never lose each other's fields (the version
attribute makes each update conditional; on a conflict we re-read and re-decide)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any, TypeVar

from pynamodb.exceptions import DoesNotExist, UpdateError
from pynamodb.models import Model

from audiomixer.settings import STEMS, get_settings
from audiomixer.store import keys, usage
from audiomixer.store.models import Mix, MixStatus, Project, ProjectStatus, Sound, SoundStatus, utcnow

P, S, X = ProjectStatus, SoundStatus, MixStatus
PROJECT: dict[str, set[str]] = {
    P.QUEUED: {P.SEPARATING, P.ANALYSING, P.READY, P.FAILED},
    P.SEPARATING: {P.ANALYSING, P.FAILED},
    P.ANALYSING: {P.READY, P.FAILED},
    P.READY: set(),
    P.FAILED: set(),
}
SOUND: dict[str, set[str]] = {
    S.QUEUED: {S.ANALYSING, S.READY, S.FAILED},
    S.ANALYSING: {S.READY, S.FAILED},
    S.READY: set(),
    S.FAILED: set(),
}
MIX: dict[str, set[str]] = {
    X.QUEUED: {X.RENDERING, X.COMPLETED, X.FAILED},
    X.RENDERING: {X.COMPLETED, X.FAILED},
    X.COMPLETED: set(),
    X.FAILED: set(),
}
MACHINES: dict[type[Model], dict[str, set[str]]] = {Project: PROJECT, Sound: SOUND, Mix: MIX}


def terminal(model: type[Model]) -> set[str]:
    """The statuses a row of `model` never leaves (the ends of its machine)."""
    return {status for status, targets in MACHINES[model].items() if not targets}


# Every status some row never leaves.
TERMINAL: set[str] = set().union(*(terminal(model) for model in MACHINES))

# The statuses that mean "done, and it worked" (every other end is a failure).
SUCCEEDED: set[str] = {P.READY, S.READY, X.COMPLETED}

M = TypeVar("M", bound=Model)
_ATTEMPTS = 8


def _conflict(exc: UpdateError) -> bool:
    return exc.cause_response_code == "ConditionalCheckFailedException"


def _field_actions(cls: type[Model], fields: dict[str, Any]) -> list[Any]:
    """SET for each value; None REMOVEs the attribute."""
    return [getattr(cls, n).remove() if v is None else getattr(cls, n).set(v) for n, v in fields.items()]


def transition(item: M, to_status: str, **fields: Any) -> bool:
    """Move `item` to `to_status` (setting `fields` with it) if the state machine allows it from the
    item's current stored status. Returns False, leaving the row alone, when it does not (duplicate,
    out of order, already terminal) or when the row is gone (deleted while work was queued)."""
    cls = type(item)
    allowed_from = {s for s, targets in MACHINES[cls].items() if to_status in targets}
    return _update_while(item, allowed_from, {"status": to_status, **fields})


def update_fields(item: M, *, only_in: set[str] | None = None, **fields: Any) -> bool:
    """Set fields without changing status, only while the status is one of `only_in` (if given).
    False when the status no longer allows it or the row is gone."""
    return _update_while(item, only_in, fields)


def _update_while(item: M, statuses: set[str] | None, fields: dict[str, Any]) -> bool:
    """One conditional update: applied only while the stored status is in `statuses` (any, if None) and
    the stored version is the one we read. On a conflict, re-read and decide again."""
    cls = type(item)
    status_attr = cls.status  # type: ignore[attr-defined]
    condition = status_attr.is_in(*statuses) if statuses else status_attr.exists()
    for _ in range(_ATTEMPTS):
        if statuses is not None and item.status not in statuses:  # type: ignore[attr-defined]
            return False
        # Fresh each time: PynamoDB appends its version action to the list it is given.
        actions = [cls.updated_at.set(utcnow()), *_field_actions(cls, fields)]  # type: ignore[attr-defined]
        try:
            item.update(actions=actions, condition=condition)
            return True
        except UpdateError as exc:
            if not _conflict(exc):
                raise
        try:
            item.refresh(consistent_read=True)
        except DoesNotExist:
            return False
    return False


def raise_progress(item: M, progress: int, status: str) -> bool:
    """Progress only rises, and only while the item is still in `status`. The condition is on the stored
    progress itself (not the version), so a stale copy can neither lower it nor lose to unrelated writes."""
    cls = type(item)
    try:
        item.update(
            actions=[cls.progress.set(progress), cls.updated_at.set(utcnow())],  # type: ignore[attr-defined]
            condition=(cls.status == status) & (cls.progress < progress),  # type: ignore[attr-defined]
            add_version_condition=False,
        )
        return True
    except UpdateError as exc:
        if not _conflict(exc):
            raise
    return False


def still_exists(item: Model) -> bool:
    """Whether the row is still stored (a stage that finds it deleted removes what it just wrote)."""
    try:
        item.refresh(consistent_read=True)
        return True
    except DoesNotExist:
        return False


def upload_deadline(item: Project | Sound) -> float | None:
    """When the presigned form of a still-awaited upload expires (epoch seconds); None for anything else."""
    if item.status != "queued" or item.stage != "upload" or item.expires_at is None:
        return None
    return item.created_at.timestamp() + get_settings().presign_expiry_s


def expire_unused_upload(item: Project | Sound, s3: Any, bucket: str, now: float | None = None) -> bool:
    """End an awaited upload whose form expired unused as `failed` ("upload never arrived") and refund
    the bytes it reserved. True when the item is no longer awaited (ended here or by someone else).
    An upload that reached S3 in time but waits for ingest is left alone."""
    deadline = upload_deadline(item)
    now = time.time() if now is None else now
    if deadline is None or now < deadline:
        return False
    if isinstance(item, Sound):
        raw = keys.upload(item.tenant_id, "style-sound", item.sound_id)
    elif item.source_kind == "stems":  # any stem that reached S3 in time is still to be ingested
        raw = keys.upload(item.tenant_id, "stem", item.project_id, STEMS[0]).rsplit("/", 1)[0] + "/"
    else:
        raw = keys.upload(item.tenant_id, "base-track", item.project_id)
    if s3.list_objects_v2(Bucket=bucket, Prefix=raw, MaxKeys=1).get("KeyCount", 0):
        return False
    expired = datetime.fromtimestamp(deadline, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    reason = (
        f"upload never arrived: its form expired unused at {expired} (or S3 refused the file, e.g. larger "
        "than declared); request a new upload with POST /api/v1/uploads"
    )
    missing = [] if isinstance(item, Sound) else [s for s, done in item.stems.as_dict().items() if not done]
    if isinstance(item, Project) and item.source_kind == "stems" and missing:
        reason = f"stem {', '.join(missing)} never arrived; " + reason.removeprefix("upload never arrived: ")
    charged = int(item.quota_bytes or 0)
    if transition(item, "failed", failure_reason=reason, stage="upload", quota_bytes=0):
        usage.refund_bytes(item.tenant_id, charged)
        return True
    return item.status in TERMINAL
