"""Ending a job as `failed` with a reason a person can act on, the one way every stage does it: the
state machine decides whether the row may still fail, and subscribers hear about it when it did."""

from __future__ import annotations

from typing import Any

from pynamodb.exceptions import DoesNotExist
from pynamodb.models import Model

from audiomixer import notify
from audiomixer.store.models import Mix, Project, Sound
from audiomixer.store.status import transition

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
