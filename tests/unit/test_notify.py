"""The notifier: fan-out to subscribers, Gone cleanup, progress throttling, never failing its caller."""

import json
import time

import pytest

from audiomixer import notify
from audiomixer.settings import get_settings
from audiomixer.store.keys import new_id
from audiomixer.store.models import Connection


class GoneException(Exception):
    pass


class FakeManagementApi:
    class exceptions:
        GoneException = GoneException

    def __init__(self, gone: set[str] = frozenset(), broken: bool = False) -> None:
        self.gone, self.broken, self.posts = set(gone), broken, []

    def post_to_connection(self, ConnectionId: str, Data: bytes) -> None:
        if self.broken:
            raise ConnectionError("endpoint down")
        if ConnectionId in self.gone:
            raise GoneException()
        self.posts.append((ConnectionId, json.loads(Data)))


@pytest.fixture
def ws_endpoint(aws, monkeypatch):
    monkeypatch.setenv("AUDIOMIXER_WS_ENDPOINT", "http://127.0.0.1:1/local")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _subscribe(connection_id: str, project_id: str) -> None:
    Connection(
        connection_id,
        subscription=notify.subscription("acme", "project", project_id),
        tenant_id="acme",
        expires_at=int(time.time()) + 60,
    ).save()


def _event(project_id: str, status: str = "separating", progress: int = 10) -> notify.StatusEvent:
    return notify.StatusEvent(
        type="project",
        id=project_id,
        status=status,
        stage="separate",
        progress=progress,
        at="2026-11-26T00:00:00Z",
    )


def test_every_subscriber_gets_the_event_and_gone_ones_are_removed(ws_endpoint):
    project_id = new_id()
    for c in ("a", "b", "gone"):
        _subscribe(c, project_id)
    _subscribe("other", new_id())  # subscribed elsewhere: must not receive it
    client = FakeManagementApi(gone={"gone"})
    assert notify.publish("acme", _event(project_id), management_client=client) == 2
    assert sorted(c for c, _ in client.posts) == ["a", "b"]
    assert set(client.posts[0][1]) == {"type", "id", "status", "stage", "progress", "detail", "at"}
    assert {c.connection_id for c in Connection.scan()} == {"a", "b", "other"}


def test_progress_events_are_throttled_but_status_changes_pass(ws_endpoint):
    project_id = new_id()
    _subscribe("a", project_id)
    client = FakeManagementApi()
    sent = [
        notify.publish("acme", _event(project_id, progress=p), management_client=client)
        for p in range(10, 20)
    ]
    assert sent[0] == 1 and sum(sent) == 1  # within one interval only the first progress event goes out
    assert notify.publish(
        "acme", _event(project_id, status="analysing", progress=90), management_client=client
    )
    assert notify.publish("acme", _event(project_id, status="ready", progress=100), management_client=client)


def test_the_notifier_never_fails_its_caller(ws_endpoint):
    project_id = new_id()
    _subscribe("a", project_id)
    assert notify.publish("acme", _event(project_id), management_client=FakeManagementApi(broken=True)) == 0


def test_without_an_endpoint_nothing_is_sent(aws):
    assert notify.publish("acme", _event(new_id()), management_client=FakeManagementApi()) == 0
