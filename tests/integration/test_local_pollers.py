"""SQS pollers: the event shape Lambda delivers, partial batch failures, redelivery after the visibility
timeout, poison messages ending in the DLQ, and DLQ peek/redrive (all in-process with mock_aws)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from audiomixer_local import functions
from audiomixer_local.cli import peek, redrive
from audiomixer_local.pollers import SqsPoller, build_pollers, failed_ids
from audiomixer_local.resources import LocalResources, create_resources

FIXTURE = Path(__file__).parent / "fixtures" / "local_template.yaml"


@pytest.fixture
def res(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalResources]:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        # EchoQueue's 60 s visibility timeout becomes 1 s, so redelivery is observable quickly.
        "AUDIOMIXER_LOCAL_TIME_SCALE": "0.01",
    }.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        yield create_resources(FIXTURE)


@pytest.fixture
def echo(res: LocalResources) -> Any:
    module = functions.load_module(res.function("EchoFunction").module_file)
    module.RECEIVED.clear()
    return module


def _poller(res: LocalResources) -> SqsPoller:
    (poller,) = [p for p in build_pollers(res) if p.function.logical_id == "EchoFunction"]
    return poller


def _send(res: LocalResources, *actions: str) -> list[str]:
    sqs = boto3.client("sqs")
    return [
        sqs.send_message(
            QueueUrl=res.queues["EchoQueue"].url,
            MessageBody=json.dumps({"action": a, "n": i}),
            MessageAttributes={"kind": {"DataType": "String", "StringValue": "test"}},
        )["MessageId"]
        for i, a in enumerate(actions)
    ]


def _depth(res: LocalResources, queue: str) -> tuple[int, int]:
    attrs = boto3.client("sqs").get_queue_attributes(QueueUrl=res.queues[queue].url, AttributeNames=["All"])
    a = attrs["Attributes"]
    return int(a["ApproximateNumberOfMessages"]), int(a["ApproximateNumberOfMessagesNotVisible"])


def test_event_has_lambda_sqs_shape(res: LocalResources, echo: Any) -> None:
    (message_id,) = _send(res, "ok")
    poller = _poller(res)
    assert poller.poll_once(boto3.client("sqs")) == 1
    (call,) = echo.RECEIVED
    assert call["function_name"] == "audiomixer-EchoFunction"
    assert 0 < call["remaining_ms"] <= 20_000  # the function's Timeout from the template
    (record,) = call["event"]["Records"]
    assert set(record) == {
        "messageId",
        "receiptHandle",
        "body",
        "attributes",
        "messageAttributes",
        "md5OfBody",
        "md5OfMessageAttributes",
        "eventSource",
        "eventSourceARN",
        "awsRegion",
    }
    assert record["messageId"] == message_id
    assert json.loads(record["body"]) == {"action": "ok", "n": 0}
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == res.queues["EchoQueue"].arn
    assert record["awsRegion"] == "us-east-1"
    assert set(record["attributes"]) >= {
        "ApproximateReceiveCount",
        "SentTimestamp",
        "SenderId",
        "ApproximateFirstReceiveTimestamp",
    }
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert record["messageAttributes"]["kind"] == {
        "stringValue": "test",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String",
    }
    assert _depth(res, "EchoQueue") == (0, 0)  # success deletes the message


def test_partial_batch_failure_redelivers_only_the_failed_message(res: LocalResources, echo: Any) -> None:
    ids = _send(res, "ok", "fail", "ok")
    poller, sqs = _poller(res), boto3.client("sqs")
    received = 0
    while received < 3:
        received += poller.poll_once(sqs)
    assert poller.stats.as_dict()["succeeded"] == 2 and poller.stats.as_dict()["failed"] == 1
    assert _depth(res, "EchoQueue") == (0, 1)  # the failed one is in flight until its visibility timeout
    time.sleep(1.2)
    echo.RECEIVED.clear()
    assert poller.poll_once(sqs) == 1
    (record,) = echo.RECEIVED[0]["event"]["Records"]
    assert record["messageId"] == ids[1]
    assert record["attributes"]["ApproximateReceiveCount"] == "2"


def test_raising_handler_leaves_whole_batch(res: LocalResources, echo: Any) -> None:
    _send(res, "ok", "raise")
    poller, sqs = _poller(res), boto3.client("sqs")
    received = 0
    while received < 2:
        received += poller.poll_once(sqs)
    stats = poller.stats.as_dict()
    assert stats["errors"] >= 1 and "poison message" in stats["last_error"]
    assert sum(_depth(res, "EchoQueue")) == 2  # nothing deleted: both come back


def test_invalid_batch_item_failures_fail_the_whole_batch() -> None:
    ids = ["a", "b"]
    assert failed_ids({"batchItemFailures": [{"itemIdentifier": "b"}]}, ids) == {"b"}
    assert failed_ids({"batchItemFailures": []}, ids) == set()
    assert failed_ids(None, ids) == set()
    assert failed_ids({"batchItemFailures": [{"itemIdentifier": "zzz"}]}, ids) is None
    assert failed_ids({"batchItemFailures": [{"itemIdentifier": ""}]}, ids) is None
    assert failed_ids({"batchItemFailures": "b"}, ids) is None


def test_poison_message_reaches_dlq_after_max_receive_count_then_redrives(
    res: LocalResources, echo: Any
) -> None:
    (poison,) = _send(res, "raise")
    poller = _poller(res)
    poller.start()
    try:
        deadline = time.monotonic() + 15
        while _depth(res, "EchoDLQ")[0] == 0:
            assert time.monotonic() < deadline, "poison message never reached the DLQ"
            time.sleep(0.2)
    finally:
        poller.stop()
    attempts = [r for call in echo.RECEIVED for r in call["event"]["Records"] if r["messageId"] == poison]
    assert len(attempts) == 3  # maxReceiveCount from the template's RedrivePolicy
    assert _depth(res, "EchoQueue") == (0, 0)

    sqs = boto3.client("sqs")
    dlq_url, source_url = res.queues["EchoDLQ"].url, res.queues["EchoQueue"].url
    peeked = peek(sqs, dlq_url)
    assert [json.loads(m["Body"]) for m in peeked] == [{"action": "raise", "n": 0}]
    assert _depth(res, "EchoDLQ") == (1, 0)  # peek does not consume
    assert redrive(sqs, dlq_url, source_url) == 1
    assert _depth(res, "EchoDLQ") == (0, 0)
    (back,) = sqs.receive_message(QueueUrl=source_url, MessageAttributeNames=["All"])["Messages"]
    assert json.loads(back["Body"]) == {"action": "raise", "n": 0}
    assert back["MessageAttributes"]["kind"]["StringValue"] == "test"
