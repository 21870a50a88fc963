"""Ending a job as `failed` with a reason a person can act on, the one way every stage does it: the
state machine decides whether the row may still fail, and subscribers hear about it when it did."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from pynamodb.exceptions import DoesNotExist
from pynamodb.models import Model

from audiomixer import notify
from audiomixer.store import blobs, keys
from audiomixer.store.models import Mix, Project, Sound
from audiomixer.store.status import transition

logger = Logger(service="audiomixer", child=True)

KINDS: dict[type[Model], notify.Kind] = {Project: "project", Sound: "sound", Mix: "mix"}


def kind_of(item: Model) -> notify.Kind:
    return KINDS[type(item)]


def fail(item: Model, reason: str, stage: str, **fields: Any) -> bool:
    """Move `item` to `failed` with `reason`; False when it was already terminal or is gone."""
    if transition(item, "failed", failure_reason=reason, stage=stage, **fields):
        notify.announce(kind_of(item), item)
        return True
    return False


def fail_stored(model: type[Model], tenant_id: str, object_id: str, reason: str, stage: str) -> bool:
    """As `fail`, for a row known only by its ids (a message's last delivery before the DLQ)."""
    try:
        item = model.get(tenant_id, object_id, consistent_read=True)
    except DoesNotExist:
        return False
    return fail(item, reason, stage)


def after_retries(what: str, exc: Exception, advice: str) -> str:
    from audiomixer.pipeline.sqs import PermanentError

    if isinstance(exc, PermanentError):  # failed at once: its own message says what to do
        return f"{what} failed: {exc}"
    return f"{what} failed after repeated attempts ({type(exc).__name__}); {advice}"


def forget(s3: Any, bucket: str, prefix: str) -> int:
    """Delete what a stage wrote under `prefix` for a job it found gone (deleted, or failed for good):
    its objects must not outlive its row. Returns how many objects went."""
    deleted = blobs.delete_prefix(s3, bucket, prefix)
    if deleted:
        logger.info("removed the objects of a job that is gone", extra={"prefix": prefix, "objects": deleted})
    return deleted


def drop_stems(s3: Any, bucket: str, tenant_id: str, project_id: str) -> None:
    """A failed project keeps its source (for the record) but no stems or separation checkpoints."""
    forget(s3, bucket, keys.stems_prefix(tenant_id, project_id) + "/")
    forget(s3, bucket, keys.checkpoints_prefix(tenant_id, project_id) + "/")
