"""The notifier against the local WebSocket gateway's real @connections API: live subscribers receive
events, connections that answer Gone are removed, and a dead endpoint never fails the caller."""

from __future__ import annotations

import json
import time

from websockets.sync.client import connect

from audiomixer import notify
from audiomixer.settings import get_settings
from audiomixer.store.keys import new_id
from audiomixer.store.models import Connection, Project


def _event(project_id: str, status: str) -> notify.StatusEvent:
    return notify.StatusEvent(
        type="project", id=project_id, status=status, stage="test", progress=0, at="2026-11-26T00:00:00Z"
    )


def test_live_subscriber_receives_and_gone_connection_is_removed(local_stack) -> None:
    project = Project("dev", new_id(), name="song")
    project.save()
    url = f"{local_stack.ws_url}/?project_id={project.project_id}&token={local_stack.dev_api_key}"
    with connect(url, open_timeout=10) as ws:
        # A connection API Gateway has forgotten (the client vanished without a close frame).
        Connection(
            "R29uZUNvbm5lY3Rpb24=",
            subscription=notify.subscription("dev", "project", project.project_id),
            tenant_id="dev",
            expires_at=int(time.time()) + 60,
        ).save()
        assert notify.publish("dev", _event(project.project_id, "separating")) == 1
        assert json.loads(ws.recv(timeout=10))["status"] == "separating"
        remaining = [c.connection_id for c in Connection.scan()]
        assert "R29uZUNvbm5lY3Rpb24=" not in remaining and len(remaining) == 1
    deadline = time.monotonic() + 10
    while Connection.count() and time.monotonic() < deadline:  # $disconnect removes the live one
        time.sleep(0.1)
    assert Connection.count() == 0


def test_a_dead_endpoint_never_fails_the_caller(local_stack, monkeypatch) -> None:
    project = Project("dev", new_id(), name="song")
    project.save()
    Connection(
        "QWJzZW50",
        subscription=notify.subscription("dev", "project", project.project_id),
        tenant_id="dev",
        expires_at=int(time.time()) + 60,
    ).save()
    monkeypatch.setenv("AUDIOMIXER_WS_ENDPOINT", "http://127.0.0.1:9/prod")  # discard port: nothing listens
    get_settings.cache_clear()
    try:
        started = time.monotonic()
        assert notify.publish("dev", _event(project.project_id, "ready")) == 0
        assert time.monotonic() - started < 30
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
