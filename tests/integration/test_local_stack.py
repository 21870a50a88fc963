"""The whole local stack in one process (moto server, uvicorn, gateway, pollers, Batch runner) with real
HTTP, WebSocket and boto3 clients, plus the status / invoke / dlq commands against it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from websockets.exceptions import ConnectionClosedOK, InvalidStatus
from websockets.sync.client import connect

from audiomixer_local import functions
from audiomixer_local.cli import dlq_main, invoke_main, status_main
from audiomixer_local.stack import LocalStack, StackConfig

FIXTURE = Path(__file__).parent / "fixtures" / "local_template.yaml"


async def tiny_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Stands in for the FastAPI app so these tests only exercise the local stack."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    body = json.dumps({"path": scope["path"]}).encode()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    data_dir = tmp_path_factory.mktemp("stack")
    config = StackConfig(template=FIXTURE, port=0, data_dir=data_dir, app=tiny_app, seed_dev_tenant=False)
    with LocalStack(config) as running:
        yield running


@pytest.fixture
def ws_calls(stack: LocalStack) -> list[tuple[str, dict[str, Any]]]:
    module = functions.load_module(stack.res.function("WsConnectFunction").module_file)  # type: ignore[union-attr]
    module.CALLS.clear()
    return module.CALLS


def _ws(stack: LocalStack, path: str, **kwargs: Any) -> Any:
    return connect(f"ws://127.0.0.1:{stack.port}{path}", open_timeout=10, **kwargs)


def test_router_sends_http_to_the_app_and_reports_status(stack: LocalStack) -> None:
    assert httpx.get(f"{stack.local_url}/api/v1/projects").json() == {"path": "/api/v1/projects"}
    status = httpx.get(f"{stack.local_url}/_local/status").json()
    assert status["queues"]["EchoQueue"]["dlq"] == "EchoDLQ"
    assert "EchoQueue->EchoFunction" in status["pollers"]
    info = json.loads((stack.config.data_dir / "stack.json").read_text())
    assert info["endpoint_url"] == stack.endpoint_url
    assert info["env"]["AUDIOMIXER_WS_ENDPOINT"] == f"http://127.0.0.1:{stack.port}/prod"
    assert info["env"]["AUDIOMIXER_ECHO_QUEUE_URL"].startswith(stack.endpoint_url)


def test_connect_refused_with_the_handler_status(stack: LocalStack, ws_calls: list[Any]) -> None:
    with pytest.raises(InvalidStatus) as denied, _ws(stack, "/ws/project/p1?token=bad"):
        pass
    assert denied.value.response.status_code == 401
    with pytest.raises(InvalidStatus) as missing, _ws(stack, "/?project_id=missing&token=good"):
        pass
    assert missing.value.response.status_code == 404
    assert [name for name, _ in ws_calls] == ["connect", "connect"]  # no $disconnect for refused sockets


def test_seed_url_gets_state_at_once_and_events_have_api_gateway_shape(
    stack: LocalStack, ws_calls: list[Any]
) -> None:
    with _ws(stack, "/ws/project/p1", additional_headers={"Authorization": "Bearer good"}) as ws:
        first = json.loads(ws.recv(timeout=10))
    assert first["type"] == "state"
    deadline = time.monotonic() + 10
    while [n for n, _ in ws_calls] != ["connect", "sync", "disconnect"]:
        assert time.monotonic() < deadline, ws_calls
        time.sleep(0.05)
    connect_event, sync_event, disconnect_event = (e for _, e in ws_calls)
    ctx = connect_event["requestContext"]
    assert (ctx["routeKey"], ctx["eventType"], ctx["stage"]) == ("$connect", "CONNECT", "prod")
    assert ctx["connectionId"] == first["connection_id"]
    assert ctx["apiId"] == stack.res.websocket.api_id  # type: ignore[union-attr]
    assert ctx["identity"]["sourceIp"] == "127.0.0.1"
    assert {"requestId", "connectedAt", "domainName", "requestTimeEpoch"} <= set(ctx)
    # Headers reach $connect as headers: the gateway adds nothing to the query string (AWS does not).
    assert connect_event["queryStringParameters"] == {"project_id": "p1"}
    assert connect_event["headers"]["Authorization"] == "Bearer good"
    assert connect_event["isBase64Encoded"] is False
    assert sync_event["requestContext"]["eventType"] == "MESSAGE"
    assert json.loads(sync_event["body"]) == {"action": "sync"}
    assert "messageId" in sync_event["requestContext"]
    assert disconnect_event["requestContext"]["eventType"] == "DISCONNECT"
    assert disconnect_event["requestContext"]["disconnectStatusCode"] == 1000


def test_api_gateway_url_routes_messages_by_action(stack: LocalStack, ws_calls: list[Any]) -> None:
    with _ws(stack, "/?mix_id=m1&token=good") as ws:
        ws.send(json.dumps({"action": "sync"}))
        assert json.loads(ws.recv(timeout=10))["type"] == "state"
        ws.send(json.dumps({"action": "nothing-routes-this"}))
        assert json.loads(ws.recv(timeout=10))["message"] == "Forbidden"  # no $default route in the template
    assert ws_calls[0][1]["queryStringParameters"] == {"mix_id": "m1", "token": "good"}


def test_management_api_round_trip_with_boto3(stack: LocalStack, ws_calls: list[Any]) -> None:
    endpoint = stack.res.env["AUDIOMIXER_WS_ENDPOINT"]  # type: ignore[union-attr]
    client = boto3.client("apigatewaymanagementapi", endpoint_url=endpoint, region_name="us-east-1")
    with _ws(stack, "/?project_id=p2&token=good", user_agent_header="test-agent/1") as ws:
        deadline = time.monotonic() + 10
        while not stack.gateway.connections:  # type: ignore[union-attr]
            assert time.monotonic() < deadline
            time.sleep(0.02)
        (connection_id,) = stack.gateway.connections  # type: ignore[union-attr]
        info = client.get_connection(ConnectionId=connection_id)
        assert isinstance(info["ConnectedAt"], datetime)
        assert info["Identity"] == {"SourceIp": "127.0.0.1", "UserAgent": "test-agent/1"}
        client.post_to_connection(ConnectionId=connection_id, Data=json.dumps({"type": "project"}).encode())
        assert json.loads(ws.recv(timeout=10)) == {"type": "project"}
        client.delete_connection(ConnectionId=connection_id)
        with pytest.raises(ConnectionClosedOK):
            ws.recv(timeout=10)
    with pytest.raises(client.exceptions.GoneException):
        client.post_to_connection(ConnectionId=connection_id, Data=b"{}")
    with pytest.raises(client.exceptions.GoneException):
        client.get_connection(ConnectionId="bm9wZQ==")
    deadline = time.monotonic() + 10
    while "disconnect" not in [n for n, _ in ws_calls]:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_pollers_and_batch_run_against_the_server(stack: LocalStack) -> None:
    echo = functions.load_module(stack.res.function("EchoFunction").module_file)  # type: ignore[union-attr]
    echo.RECEIVED.clear()
    sqs = boto3.client("sqs", endpoint_url=stack.endpoint_url, region_name="us-east-1")
    sqs.send_message(QueueUrl=stack.res.queues["EchoQueue"].url, MessageBody=json.dumps({"action": "ok"}))  # type: ignore[union-attr]
    deadline = time.monotonic() + 10
    while not echo.RECEIVED:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    batch = boto3.client("batch", endpoint_url=stack.endpoint_url, region_name="us-east-1")
    job_id = batch.submit_job(
        jobName="server-job",
        jobQueue=stack.res.env["AUDIOMIXER_BATCH_JOB_QUEUE"],  # type: ignore[union-attr]
        jobDefinition=stack.res.env["AUDIOMIXER_BATCH_JOB_DEFINITION"],  # type: ignore[union-attr]
        containerOverrides={"command": ["python", "-c", "print('separating')"]},
    )["jobId"]
    assert stack.batch.wait(job_id, 30) == "SUCCEEDED"  # type: ignore[union-attr]
    assert batch.describe_jobs(jobs=[job_id])["jobs"][0]["status"] == "SUCCEEDED"
    jobs = httpx.get(f"{stack.local_url}/_local/status").json()["jobs"]
    assert jobs[0]["jobId"] == job_id
    assert Path(jobs[0]["logs"][0]).read_text().strip() == "separating"


def test_status_invoke_and_dlq_commands(
    stack: LocalStack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = str(stack.config.data_dir)
    assert status_main(["--data-dir", data_dir]) == 0
    out = capsys.readouterr().out
    assert "audiomixer-EchoQueue" in out and "audiomixer-EchoDLQ" in out

    event = tmp_path / "event.json"
    event.write_text(json.dumps({"Records": [{"messageId": "m1", "body": json.dumps({"action": "fail"})}]}))
    assert invoke_main(["echo", "-e", str(event), "--data-dir", data_dir]) == 0
    assert json.loads(capsys.readouterr().out) == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert invoke_main(["NoSuchFunction", "--data-dir", data_dir]) == 2

    sqs = boto3.client("sqs", endpoint_url=stack.endpoint_url, region_name="us-east-1")
    dlq_url = stack.res.queues["EchoDLQ"].url  # type: ignore[union-attr]
    sqs.send_message(QueueUrl=dlq_url, MessageBody=json.dumps({"action": "ok", "from": "dlq"}))
    assert dlq_main(["--data-dir", data_dir, "list", "EchoQueue", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [json.loads(m["body"]) for m in listed["audiomixer-EchoDLQ"]] == [{"action": "ok", "from": "dlq"}]
    assert dlq_main(["--data-dir", data_dir, "redrive", "EchoDLQ"]) == 0
    assert "moved 1 message(s)" in capsys.readouterr().out
    echo = functions.load_module(stack.res.function("EchoFunction").module_file)  # type: ignore[union-attr]
    deadline = time.monotonic() + 10
    while not any(
        json.loads(r["body"]).get("from") == "dlq" for c in echo.RECEIVED for r in c["event"]["Records"]
    ):
        assert time.monotonic() < deadline, "redriven message was not consumed"
        time.sleep(0.05)
