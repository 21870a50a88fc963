"""Integration fixtures: a real DynamoDB engine (DynamoDB Local, one JVM per session) next to moto.

`dynamodb_local_aws` is the `aws` fixture's world (every template resource in in-process moto) with
DynamoDB alone pointed at DynamoDB Local, so PynamoDB's conditional writes run on the real engine while
S3, SQS and the rest stay in moto. Without Java or npm (or offline on the first install) the tests that
use it skip; with CI=true they fail instead, because CI must really run them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dynamodb_local as ddbl  # tests/ is on sys.path (tests/conftest.py)
import pytest

TESTS = Path(__file__).resolve().parents[1]

TEMPLATE = TESTS.parent / "template.yaml"
# The JVM spawned when collection ends (or the reason it could not be), so its start-up overlaps the
# tests that run before the first one that needs it.
_SERVER = pytest.StashKey["ddbl.DynamoDBLocal | Exception"]()


def rebind() -> None:
    """audiomixer.aws.reset(), then drop every model's cached PynamoDB connection: configure() keeps a
    connection while (table, region, Meta.host) are unchanged, and Meta.host stays None here, so a
    connection made for moto would otherwise keep talking to moto (and one made here, to a stopped JVM)."""
    from audiomixer import aws as aws_clients
    from audiomixer.store.models import ALL_MODELS

    aws_clients.reset()
    for model in ALL_MODELS:
        model._connection = None
        for index in model._indexes.values():
            index._connection = None  # type: ignore[attr-defined]


def pytest_collection_finish(session: pytest.Session) -> None:
    config = session.config
    if config.option.collectonly or _SERVER in config.stash:
        return
    if any("dynamodb_local" in getattr(item, "fixturenames", ()) for item in session.items):
        try:
            config.stash[_SERVER] = ddbl.begin()
        except Exception as exc:  # reported by the fixture, to the tests that need it, not the session
            config.stash[_SERVER] = exc


def pytest_sessionfinish(session: pytest.Session) -> None:
    server = session.config.stash.get(_SERVER, None)
    if isinstance(server, ddbl.DynamoDBLocal):
        server.stop()


@pytest.fixture(scope="session")
def dynamodb_local(pytestconfig: pytest.Config) -> ddbl.DynamoDBLocal:
    """A running DynamoDB Local for the whole session (installed into .cache/ on first use)."""
    try:
        server = pytestconfig.stash.get(_SERVER, None)
        if server is None:  # e.g. requested through getfixturevalue, unseen at collection
            server = pytestconfig.stash[_SERVER] = ddbl.begin()
        if isinstance(server, Exception):
            raise server
        server.wait_ready()
    except ddbl.Unavailable as exc:
        ddbl.unavailable(str(exc))
    return server


@pytest.fixture(scope="session")
def dynamodb_local_tables(dynamodb_local: ddbl.DynamoDBLocal) -> dict[str, str]:
    """template.yaml's tables, created once on DynamoDB Local: logical id -> table name."""
    return ddbl.create_template_tables(TEMPLATE, dynamodb_local.endpoint_url)


@pytest.fixture(scope="module")
def dynamodb_local_world(
    dynamodb_local: ddbl.DynamoDBLocal, dynamodb_local_tables: dict[str, str]
) -> Iterator[Any]:
    """The `aws` fixture's world (template.yaml's resources in in-process moto, environment pointed at
    it), built once per module because create_resources costs ~2 s, with DynamoDB alone sent to DynamoDB
    Local. Only the service-specific AWS_ENDPOINT_URL_DYNAMODB is set: AWS_ENDPOINT_URL would send S3 and
    SQS there too. settings.aws_endpoint_url stays None, so PynamoDB gets no explicit host and botocore
    resolves the same variable for it; mock_aws lets requests to that loopback endpoint through."""
    from moto import mock_aws

    from audiomixer_local.resources import create_resources

    with pytest.MonkeyPatch.context() as mp, mock_aws():
        mp.delenv("AWS_ENDPOINT_URL", raising=False)
        mp.delenv("AWS_ENDPOINT_URL_DYNAMODB", raising=False)
        resources = create_resources(TEMPLATE)  # moto: queues, buckets, ... (its tables go unused)
        assert resources.tables == dynamodb_local_tables, "moto and DynamoDB Local disagree on table names"
        for name, value in resources.env.items():
            mp.setenv(name, str(value))
        mp.setenv("AWS_ENDPOINT_URL_DYNAMODB", dynamodb_local.endpoint_url)
        rebind()
        try:
            yield resources
        finally:
            mp.undo()
            rebind()


@pytest.fixture
def dynamodb_local_aws(
    dynamodb_local_world: Any, dynamodb_local: ddbl.DynamoDBLocal, dynamodb_local_tables: dict[str, str]
) -> Any:
    """Like `aws` (yields the moto LocalResources) but DynamoDB is DynamoDB Local, emptied before each
    test. moto's S3/SQS state is shared by the tests of one module, and so are the PynamoDB connections
    (a botocore client costs ~0.1-0.5 s; the endpoint does not change within a module)."""
    from audiomixer import aws as aws_clients

    ddbl.empty_tables(dynamodb_local.endpoint_url, sorted(dynamodb_local_tables.values()))
    aws_clients.reset()  # settings a previous test changed; keeps connections while the binding holds
    return dynamodb_local_world


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    server = config.stash.get(_SERVER, None)
    if isinstance(server, Exception):
        terminalreporter.write_line(f"DynamoDB Local: not started: {server}")
    elif server is not None and server.jar is None:
        terminalreporter.write_line(f"DynamoDB Local: external endpoint {server.endpoint_url}")
    elif server is not None and server.start_s:
        terminalreporter.write_line(
            f"DynamoDB Local: install/find {server.install_s:.1f} s; JVM answered {server.start_s:.1f} s after "
            f"its spawn at collection, the tests waited {server.waited_s:.1f} s for it ({server.endpoint_url})"
        )
