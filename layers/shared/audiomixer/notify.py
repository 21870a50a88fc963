"""The notifier every stage calls: posts a status event to every WebSocket subscriber of a project,
mix or sound through API Gateway's @connections API. It throttles progress events, removes connections
that answer Gone, and never fails the stage that called it."""

from __future__ import annotations

import contextvars
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from aws_lambda_powertools import Logger
from pydantic import BaseModel, Field

from audiomixer.settings import get_settings
from audiomixer.store.models import MixStatus, ProjectStatus, SoundStatus
from audiomixer.store.status import SUCCEEDED

if TYPE_CHECKING:
    from mypy_boto3_apigatewaymanagementapi import ApiGatewayManagementApiClient

logger = Logger(service="audiomixer", child=True)

Kind = Literal["project", "mix", "sound"]
_FANOUT_WORKERS = 16


class StatusEvent(BaseModel):
    """What a WebSocket subscriber receives."""

    type: Kind = Field(description="what the id refers to")
    id: str
    status: str = Field(
        description="; ".join(
            f"{kind}: {'|'.join(statuses)}"
            for kind, statuses in (("project", ProjectStatus), ("mix", MixStatus), ("sound", SoundStatus))
        )
    )
    stage: str = Field(
        description="the pipeline stage that sent the event (upload, ingest, separate, analyse, render, ...)"
    )
    progress: int = Field(ge=0, le=100)
    detail: str | None = Field(default=None, description="failure reason or a short human message")
    at: str = Field(description="ISO-8601 UTC time the event was produced")


def subscription(tenant_id: str, kind: str, object_id: str) -> str:
    return f"{tenant_id}#{kind}#{object_id}"


def event_for(kind: Kind, item: Any, stage: str | None = None, detail: str | None = None) -> StatusEvent:
    """The event that describes a stored Project/Mix/Sound row right now."""
    object_id = {"project": "project_id", "mix": "mix_id", "sound": "sound_id"}[kind]
    status = item.status
    progress = int(getattr(item, "progress", 0) or 0)
    if status in SUCCEEDED:
        progress = 100
    return StatusEvent(
        type=kind,
        id=getattr(item, object_id),
        status=status,
        stage=stage or item.stage,
        progress=progress,
        detail=detail if detail is not None else item.failure_reason,
        at=datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    )


class _Throttle:
    """At most one progress event per interval per object; status changes always pass."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, str], tuple[str, float]] = {}
        self._lock = threading.Lock()

    def allow(self, event: StatusEvent, interval: float) -> bool:
        key = (event.type, event.id)
        now = time.monotonic()
        with self._lock:
            previous = self._last.get(key)
            if (
                previous
                and previous[0] == event.status
                and event.progress < 100
                and now - previous[1] < interval
            ):
                return False
            self._last[key] = (event.status, now)
            if len(self._last) > 10_000:  # a long-lived process must not grow without bound
                self._last.clear()
            return True


_throttle = _Throttle()


def post_to_connection(
    client: ApiGatewayManagementApiClient, connection_id: str, payload: dict[str, Any]
) -> bool:
    """Post one payload; False when the connection is gone (the caller removes it)."""
    try:
        client.post_to_connection(ConnectionId=connection_id, Data=json.dumps(payload).encode())
        return True
    except client.exceptions.GoneException:
        return False


def publish(
    tenant_id: str, event: StatusEvent, *, management_client: ApiGatewayManagementApiClient | None = None
) -> int:
    """Send `event` to every subscriber; returns how many received it. Never raises."""
    from audiomixer import aws
    from audiomixer.store.models import Connection

    settings = get_settings()
    try:
        if not settings.ws_endpoint:
            return 0
        if not _throttle.allow(event, settings.progress_min_interval_s):
            return 0
        client = management_client or aws.management_api(settings.ws_endpoint)
        payload = event.model_dump()
        connections = list(Connection.subscription_index.query(subscription(tenant_id, event.type, event.id)))

        def deliver(connection: Any) -> bool:
            try:
                if post_to_connection(client, connection.connection_id, payload):
                    return True
                connection.delete()
            except Exception as exc:  # one bad connection must not starve the others
                logger.warning(
                    "notify: post failed",
                    extra={"connection_id": connection.connection_id, "error": str(exc)},
                )
            return False

        if len(connections) <= 1:
            return sum(map(deliver, connections))
        # Each post is a network round trip; many subscribers are served side by side.
        # Each post runs in a copy of the caller's context (log keys; the local stack's IAM check).
        contexts = [contextvars.copy_context() for _ in connections]
        with ThreadPoolExecutor(max_workers=min(_FANOUT_WORKERS, len(connections))) as pool:
            return sum(pool.map(lambda ctx, c: ctx.run(deliver, c), contexts, connections))
    except Exception as exc:  # the notifier never fails the stage that called it
        logger.warning("notify: publish failed", extra={"event": event.model_dump(), "error": str(exc)})
        return 0


def announce(kind: Kind, item: Any, stage: str | None = None, detail: str | None = None) -> int:
    """Publish the current state of a stored row."""
    try:
        event = event_for(kind, item, stage=stage, detail=detail)
    except Exception as exc:
        logger.warning("notify: cannot describe item", extra={"error": str(exc)})
        return 0
    return publish(item.tenant_id, event)
