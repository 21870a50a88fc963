"""The data layer on a real DynamoDB engine (DynamoDB Local), not only moto: the status state machine's
conditional writes, version attributes, GSIs, TTL and pagination.

The state-machine scenarios are tests/unit/test_status.py's own functions, imported and re-run here with
`aws` overridden to the DynamoDB Local world, so the two suites cannot drift apart."""

from __future__ import annotations

import importlib
import shutil
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from pynamodb.exceptions import PutError, UpdateError

from audiomixer.settings import get_settings
from audiomixer.store.keys import new_id
from audiomixer.store.models import Connection, Project
from audiomixer.store.status import raise_progress, transition, update_fields

TESTS = Path(__file__).resolve().parents[1]
for _folder in (TESTS, TESTS / "unit"):  # neither is a package
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))
import dynamodb_local as ddbl  # noqa: E402

_moto_suite = importlib.import_module("test_status")
# Re-collected here under this module's `aws` fixture (below); pytest also still runs them on moto.
STATE_MACHINE_SCENARIOS: dict[str, Callable[..., Any]] = {
    name: fn for name, fn in vars(_moto_suite).items() if name.startswith("test_") and callable(fn)
}
globals().update(STATE_MACHINE_SCENARIOS)


@pytest.fixture
def aws(dynamodb_local_aws: Any) -> Any:
    """Overrides tests/conftest.py's `aws` for the imported scenarios."""
    return dynamodb_local_aws


def _project(tenant: str = "acme", **fields: Any) -> Project:
    project = Project(tenant, new_id(), name="song", **fields)
    project.save()
    return project


def _cause(exc: PutError | UpdateError) -> str | None:
    return exc.cause_response_code


def test_the_scenarios_were_imported() -> None:
    expected = {
        "test_forward_transitions_apply_and_backward_ones_do_not",
        "test_a_stale_copy_rereads_and_decides_again",
        "test_a_deleted_row_is_a_no_op",
        "test_progress_only_rises_and_only_in_its_status",
        "test_concurrent_writers_lose_nothing",
    }
    assert expected <= set(STATE_MACHINE_SCENARIOS)


def test_models_talk_to_dynamodb_local_not_moto(aws: Any, dynamodb_local: Any) -> None:
    project = _project()
    # PynamoDB got no explicit host; botocore resolved AWS_ENDPOINT_URL_DYNAMODB for it.
    assert get_settings().aws_endpoint_url is None
    assert Project._get_connection().connection.client.meta.endpoint_url == dynamodb_local.endpoint_url
    table = get_settings().projects_table
    key = {"tenant_id": {"S": "acme"}, "project_id": {"S": project.project_id}}
    real = boto3.client("dynamodb", endpoint_url=dynamodb_local.endpoint_url)
    assert real.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]["name"] == {"S": "song"}
    # moto (reached through the public endpoint, which mock_aws intercepts) never saw the row.
    moto = boto3.client("dynamodb", endpoint_url="https://dynamodb.us-east-1.amazonaws.com")
    assert "Item" not in moto.get_item(TableName=table, Key=key)
    # S3 stays in moto: the template's bucket exists there.
    assert get_settings().bucket in {b["Name"] for b in boto3.client("s3").list_buckets()["Buckets"]}


# --- version attribute ---------------------------------------------------------------------------------


def test_two_stale_saves_one_conditional_check_failure(aws: Any) -> None:
    project = _project()
    first, second = (Project.get("acme", project.project_id) for _ in range(2))
    first.name = "first"
    first.save()
    second.name = "second"
    with pytest.raises(PutError) as info:
        second.save()
    assert _cause(info.value) == "ConditionalCheckFailedException"
    stored = Project.get("acme", project.project_id, consistent_read=True)
    assert stored.name == "first" and stored.version == project.version + 1


def test_creating_the_same_key_twice_fails_the_second(aws: Any) -> None:
    project_id = new_id()
    Project("acme", project_id, name="a").save()
    with pytest.raises(PutError) as info:
        Project("acme", project_id, name="b").save()  # version None: attribute_not_exists(version)
    assert _cause(info.value) == "ConditionalCheckFailedException"
    assert Project.get("acme", project_id).name == "a"


def test_racing_stale_saves_exactly_one_wins(aws: Any) -> None:
    project = _project()
    copies = [Project.get("acme", project.project_id) for _ in range(6)]
    barrier = threading.Barrier(len(copies))
    outcomes: list[str] = []
    lock = threading.Lock()

    def save(i: int) -> None:
        copies[i].name = f"writer-{i}"
        barrier.wait()
        try:
            copies[i].save()
            result = f"won:{i}"
        except PutError as exc:
            result = str(_cause(exc))
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=save, args=(i,)) for i in range(len(copies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [o for o in outcomes if o.startswith("won:")]
    assert len(winners) == 1, outcomes
    assert outcomes.count("ConditionalCheckFailedException") == len(copies) - 1
    assert Project.get("acme", project.project_id, consistent_read=True).name == f"writer-{winners[0][4:]}"


def test_update_of_a_stale_copy_is_refused_even_on_a_disjoint_map_path(aws: Any) -> None:
    """Model.update adds the version condition: two stale copies that set different stems collide
    (ingest retries via SQS redelivery); without the version condition both paths land."""
    project = _project()
    drums, bass = (Project.get("acme", project.project_id) for _ in range(2))
    drums.update(actions=[Project.stems["drums"].set(True)], condition=Project.status == "queued")
    with pytest.raises(UpdateError) as info:
        bass.update(actions=[Project.stems["bass"].set(True)], condition=Project.status == "queued")
    assert _cause(info.value) == "ConditionalCheckFailedException"
    bass.update(
        actions=[Project.stems["bass"].set(True)],
        condition=Project.status == "queued",
        add_version_condition=False,
    )
    stored = Project.get("acme", project.project_id, consistent_read=True)
    assert stored.stems.as_dict() == {"drums": True, "bass": True}


def test_transition_survives_a_version_bump_by_an_unrelated_writer(aws: Any) -> None:
    project = _project()
    stale = Project.get("acme", project.project_id)
    created = stale.version
    assert update_fields(project, only_in={"queued"}, duration_s=12.5)  # bumps the version
    # The stale copy's first attempt fails on the version only; it re-reads and the move is still legal.
    assert transition(stale, "separating", stage="separate")
    stored = Project.get("acme", project.project_id, consistent_read=True)
    assert (stored.status, stored.stage, stored.duration_s) == ("separating", "separate", 12.5)
    assert stored.version == created + 2


def test_a_stale_progress_writer_never_lowers_progress(aws: Any) -> None:
    """raise_progress must re-decide the value after a conflict: re-sending the value decided from the
    stale copy would lower progress that a racing writer raised (59 -> 58)."""
    project = _project()
    assert transition(project, "separating")
    stale = Project.get("acme", project.project_id)
    assert raise_progress(project, 59, "separating")
    raise_progress(stale, 58, "separating")  # conflict on the version, re-read, then must not write 58
    assert Project.get("acme", project.project_id, consistent_read=True).progress == 59


# --- indexes and TTL -----------------------------------------------------------------------------------


def test_content_hash_index_finds_only_the_tenants_identical_uploads(aws: Any) -> None:
    same = [_project(content_hash="h1", tenant_content_hash="acme#h1") for _ in range(3)]
    _project(content_hash="h2", tenant_content_hash="acme#h2")
    _project(tenant="other", content_hash="h1", tenant_content_hash="other#h1")
    _project()  # no hash yet: not in the sparse index
    found = list(Project.content_hash_index.query("acme#h1"))
    assert sorted(p.project_id for p in found) == sorted(p.project_id for p in same)
    assert {p.tenant_id for p in found} == {"acme"}
    # KEYS_ONLY projection: the engine returns keys, so callers must re-read the row (ingest does).
    assert all(p.name is None for p in found)
    assert list(Project.content_hash_index.query("acme#missing")) == []


def test_subscription_index_returns_whole_connections(aws: Any) -> None:
    expires = int(time.time()) + 3600
    for i in range(3):
        Connection(f"conn-{i}", subscription="acme#project#p1", tenant_id="acme", expires_at=expires).save()
    Connection("conn-x", subscription="acme#project#p2", tenant_id="acme", expires_at=expires).save()
    found = list(Connection.subscription_index.query("acme#project#p1"))
    assert sorted(c.connection_id for c in found) == ["conn-0", "conn-1", "conn-2"]
    assert all(c.tenant_id == "acme" and c.expires_at == expires for c in found)  # ALL projection
    Connection("conn-1").delete()
    assert sorted(c.connection_id for c in Connection.subscription_index.query("acme#project#p1")) == [
        "conn-0",
        "conn-2",
    ]


def test_connections_carry_the_ttl_attribute_the_table_expires_on(aws: Any, dynamodb_local: Any) -> None:
    real = boto3.client("dynamodb", endpoint_url=dynamodb_local.endpoint_url)
    table = get_settings().connections_table
    ttl = real.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    assert ttl["TimeToLiveStatus"] == "ENABLED"
    assert ttl["AttributeName"] == Connection.expires_at.attr_name
    expires = int(time.time()) + get_settings().connection_ttl_s
    Connection("conn-ttl", subscription="acme#mix#m1", tenant_id="acme", expires_at=expires).save()
    item = real.get_item(TableName=table, Key={"connection_id": {"S": "conn-ttl"}}, ConsistentRead=True)
    assert item["Item"][ttl["AttributeName"]] == {"N": str(expires)}  # TTL only acts on a Number


# --- pagination ----------------------------------------------------------------------------------------


def test_a_tenants_projects_page_with_last_evaluated_key(aws: Any) -> None:
    mine = sorted(_project().project_id for _ in range(23))
    for _ in range(4):
        _project(tenant="other")
    pages: list[list[str]] = []
    last_key: dict[str, Any] | None = None
    while True:
        results = Project.query("acme", limit=10, last_evaluated_key=last_key)
        pages.append([p.project_id for p in results])
        last_key = results.last_evaluated_key
        if not last_key:
            break
        assert last_key == {"tenant_id": {"S": "acme"}, "project_id": {"S": pages[-1][-1]}}
        assert len(pages) < 10, "pagination does not end"
    assert [len(p) for p in pages] == [10, 10, 3]
    assert [pid for page in pages for pid in page] == mine  # sort-key order, no gaps, no repeats
    # Small DynamoDB pages (page_size) are followed transparently by the iterator.
    assert [p.project_id for p in Project.query("acme", page_size=4)] == mine


def test_api_page_walks_newest_first_with_cursors(aws: Any) -> None:
    from audiomixer.api.storage import page
    from audiomixer.store.keys import new_id as time_ordered_id

    ids = []
    for _ in range(7):
        ids.append(time_ordered_id())
        Project("acme", ids[-1], name="song").save()
        time.sleep(0.002)  # distinct millisecond prefixes
    Project("other", time_ordered_id(), name="song").save()
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(10):
        rows, cursor = page(Project, "acme", "project_id", 3, cursor)
        seen += [r.project_id for r in rows]
        if cursor is None:
            break
    assert seen == sorted(ids, reverse=True)


# --- API idempotency records (powertools' conditional puts) ------------------------------------------------


def test_idempotency_keys_on_the_real_engine(aws: Any, dynamodb_local: Any) -> None:
    from starlette.requests import Request

    from audiomixer.api import errors, idempotency

    request = Request(
        {"type": "http", "method": "POST", "path": "/api/v1/mix", "headers": [], "query_string": b""}
    )
    runs: list[str] = []

    def work(tag: str, fail: bool = False) -> Callable[[], tuple[int, dict[str, Any]]]:
        def run() -> tuple[int, dict[str, Any]]:
            runs.append(tag)
            if fail:
                raise errors.ApiError(503, "unavailable", "try again")
            return 202, {"id": tag}

        return run

    first = idempotency.run(request, "acme", "key-1", "fp-1", work("a"))
    replay = idempotency.run(request, "acme", "key-1", "fp-1", work("b"))
    assert (first.status_code, first.body) == (replay.status_code, replay.body)
    assert replay.headers.get(idempotency.REPLAYED_HEADER) == "true" and runs == ["a"]
    with pytest.raises(errors.ApiError) as reused:
        idempotency.run(request, "acme", "key-1", "fp-other", work("c"))
    assert reused.value.status == 422 and runs == ["a"]
    # Keys are per tenant, and a failed request leaves no record behind.
    idempotency.run(request, "other", "key-1", "fp-1", work("d"))
    with pytest.raises(errors.ApiError):
        idempotency.run(request, "acme", "key-2", "fp-2", work("e", fail=True))
    idempotency.run(request, "acme", "key-2", "fp-2", work("f"))
    assert runs == ["a", "d", "e", "f"]
    # The records expire through the table's TTL attribute.
    real = boto3.client("dynamodb", endpoint_url=dynamodb_local.endpoint_url)
    table = get_settings().idempotency_table
    ttl = real.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    records = real.scan(TableName=table, ConsistentRead=True)["Items"]
    assert len(records) == 3 and all("N" in r[ttl["AttributeName"]] for r in records)


# --- the helper itself (no JVM needed) -----------------------------------------------------------------


def test_unavailable_skips_locally_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="no java"):
        ddbl.unavailable("no java")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="required in CI"):
        ddbl.unavailable("no java")


def test_without_java_launch_is_unavailable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DYNAMODB_LOCAL_ENDPOINT", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # neither java nor npm on it
    with pytest.raises(ddbl.Unavailable, match="Java"):
        ddbl.launch(tmp_path / "cache")
    with pytest.raises(ddbl.Unavailable, match="npm"):
        ddbl.install(tmp_path / "cache")


def test_offline_first_install_is_unavailable_and_leaves_no_partial_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed")
    monkeypatch.setenv("npm_config_registry", f"http://127.0.0.1:{ddbl.free_port()}/")  # nothing listens
    monkeypatch.setenv("npm_config_cache", str(tmp_path / "npm-cache"))  # no cached tarball to fall back on
    monkeypatch.setenv("npm_config_fetch_retries", "0")
    cache = tmp_path / "cache"
    with pytest.raises(ddbl.Unavailable, match="ECONNREFUSED"):
        ddbl.install(cache)
    assert ddbl.find_jar(cache) is None
    assert [p.name for p in cache.iterdir()] == [".install.lock"]


def test_usage_limits_hold_against_racing_threads_on_a_real_engine(aws: Any) -> None:
    """The per-tenant job slots and storage counter (audiomixer.store.usage) are conditional writes: on
    DynamoDB Local, as on moto, 12 threads racing for 3 slots get exactly 3, and 10 racing to reserve
    300 bytes each of a 1000-byte quota get exactly 3 reservations."""
    from audiomixer.store import usage

    tenant, barrier = f"race-{new_id()[:8]}", threading.Barrier(12)
    taken: list[str] = []

    def take(n: int) -> None:
        barrier.wait(10)
        try:
            usage.acquire_job_slot(tenant, f"project#{n}", 3, lambda h, t: usage.Busy(h, h))
            taken.append(str(n))
        except usage.JobLimitReached:
            pass

    threads = [threading.Thread(target=take, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(taken) == 3, taken

    charged: list[int] = []
    gate = threading.Barrier(10)

    def charge() -> None:
        gate.wait(10)
        try:
            usage.charge_bytes(tenant, 300, 1000)
            charged.append(300)
        except usage.QuotaExceeded:
            pass

    threads = [threading.Thread(target=charge) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(charged) == 3 and usage.stored_bytes(tenant) == 900
