"""One poller per SQS event source mapping: receives up to BatchSize messages, builds the event Lambda's
SQS poller would build, invokes the handler in-process and deletes what succeeded. Partial batch
responses are honoured as Lambda does; a raising handler leaves the whole batch to reappear after the
queue's visibility timeout; moto moves a message to the DLQ once its receive count passes
maxReceiveCount (the redrive policy created from the template)."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import boto3

from audiomixer_local import functions
from audiomixer_local.resources import FunctionSpec, LocalResources, QueueInfo, SqsSource

log = logging.getLogger("audiomixer_local.pollers")


def sqs_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """One Records[] entry in the exact shape Lambda delivers."""
    attributes = dict(message.get("Attributes") or {})
    keep = (
        "ApproximateReceiveCount",
        "SentTimestamp",
        "SenderId",
        "ApproximateFirstReceiveTimestamp",
        "SequenceNumber",
        "MessageGroupId",
        "MessageDeduplicationId",
        "AWSTraceHeader",
    )
    record_attributes = {k: str(attributes[k]) for k in keep if k in attributes}
    message_attributes = {
        name: {
            "stringValue": value.get("StringValue"),
            "binaryValue": value.get("BinaryValue"),
            "stringListValues": list(value.get("StringListValues") or []),
            "binaryListValues": list(value.get("BinaryListValues") or []),
            "dataType": value.get("DataType", "String"),
        }
        for name, value in (message.get("MessageAttributes") or {}).items()
    }
    for value in message_attributes.values():
        if value["binaryValue"] is None:
            del value["binaryValue"]
        if value["stringValue"] is None:
            del value["stringValue"]
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": record_attributes,
        "messageAttributes": message_attributes,
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if message.get("MD5OfMessageAttributes"):
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def failed_ids(result: Any, message_ids: list[str]) -> set[str] | None:
    """Message ids to keep after a ReportBatchItemFailures response; None means the whole batch failed
    (Lambda treats a malformed response or an unknown/empty itemIdentifier that way)."""
    if result is None:
        return set()
    if not isinstance(result, dict):
        return set()
    failures = result.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return None
    keep: set[str] = set()
    for item in failures:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not identifier or identifier not in message_ids:
            return None
        keep.add(identifier)
    return keep


@dataclass
class PollerStats:
    invocations: int = 0
    errors: int = 0
    succeeded: int = 0
    failed: int = 0
    last_error: str | None = None
    last_invocation_at: float | None = None
    in_progress: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def as_dict(self) -> dict[str, Any]:
        with self.lock:
            return {
                "invocations": self.invocations,
                "errors": self.errors,
                "succeeded": self.succeeded,
                "failed": self.failed,
                "in_progress": self.in_progress,
                "last_error": self.last_error,
                "last_invocation_at": self.last_invocation_at,
            }


class SqsPoller:
    """Polls one queue for one function with `concurrency` threads."""

    def __init__(
        self,
        function: FunctionSpec,
        source: SqsSource,
        queue: QueueInfo,
        *,
        region: str,
        endpoint_url: str | None = None,
        concurrency: int = 1,
        wait_time_s: int = 1,
    ) -> None:
        self.function = function
        self.source = source
        self.queue = queue
        self.region = region
        self.endpoint_url = endpoint_url
        self.concurrency = max(1, concurrency)
        self.wait_time_s = wait_time_s
        self.stats = PollerStats()
        self._stop = threading.Event()
        self._running = threading.Event()  # cleared by pause(): the mapping is disabled, messages wait
        self._running.set()
        self._threads: list[threading.Thread] = []

    @property
    def name(self) -> str:
        return f"{self.queue.logical_id}->{self.function.logical_id}"

    def start(self) -> None:
        for i in range(self.concurrency):
            thread = threading.Thread(target=self._run, name=f"poller-{self.name}-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def pause(self) -> None:
        """Stop receiving (like disabling the event source mapping) until resume()."""
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def signal_stop(self) -> None:
        self._stop.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _run(self) -> None:
        sqs = boto3.client("sqs", region_name=self.region, endpoint_url=self.endpoint_url)
        while not self._stop.is_set():
            if not self._running.is_set():
                self._running.wait(0.2)
                continue
            try:
                self.poll_once(sqs)
            except Exception as exc:  # a poller never dies; the queue may be briefly unreachable
                if self._stop.is_set():
                    break
                log.warning("poller %s: %s", self.name, exc)
                self._stop.wait(1.0)

    def poll_once(self, sqs: Any) -> int:
        """Receive one batch and process it; returns how many messages were received."""
        response = sqs.receive_message(
            QueueUrl=self.queue.url,
            MaxNumberOfMessages=max(1, min(self.source.batch_size, 10)),
            WaitTimeSeconds=self.wait_time_s,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = response.get("Messages") or []
        if not messages:
            return 0
        self.process(sqs, messages)
        return len(messages)

    def process(self, sqs: Any, messages: list[dict[str, Any]]) -> None:
        event = {"Records": [sqs_record(m, self.queue.arn, self.region) for m in messages]}
        ids = [m["MessageId"] for m in messages]
        with self.stats.lock:
            self.stats.invocations += 1
            self.stats.in_progress += 1
            self.stats.last_invocation_at = time.time()
        keep: set[str] | None
        try:
            outcome = functions.invoke(self.function, event)
            if outcome.timed_out:
                log.warning(
                    "%s ran %.1f s, past its Timeout of %.0f s (Lambda would have killed it)",
                    self.function.logical_id,
                    outcome.duration_s,
                    self.function.timeout_s,
                )
            keep = failed_ids(outcome.result, ids) if self.source.report_batch_item_failures else set()
            if keep is None:
                log.warning(
                    "%s: invalid batchItemFailures %r; whole batch retried", self.name, outcome.result
                )
        except BaseException as exc:
            # SystemExit (or any BaseException) is a sandbox that died mid-message: Lambda leaves the
            # batch for redelivery, and this poller thread must not die with it.
            if isinstance(exc, KeyboardInterrupt):
                raise
            log.exception("%s: handler raised; %d message(s) will be redelivered", self.name, len(messages))
            keep = None
            with self.stats.lock:
                self.stats.errors += 1
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
        finally:
            with self.stats.lock:
                self.stats.in_progress -= 1
        if keep is None:
            keep = set(ids)
        done = [m for m in messages if m["MessageId"] not in keep]
        for start in range(0, len(done), 10):
            chunk = done[start : start + 10]
            sqs.delete_message_batch(
                QueueUrl=self.queue.url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
        with self.stats.lock:
            self.stats.succeeded += len(done)
            self.stats.failed += len(keep)


def build_pollers(
    res: LocalResources, *, concurrency: int | None = None, wait_time_s: int = 1
) -> list[SqsPoller]:
    """A poller per enabled SQS event source mapping of the template. Threads per mapping default to 1
    (the machine is small); `concurrency` raises that, capped by the mapping's MaximumConcurrency."""
    pollers = []
    for spec, source in res.sqs_mappings():
        threads = concurrency or 1
        if source.maximum_concurrency:
            threads = min(threads, source.maximum_concurrency)
        pollers.append(
            SqsPoller(
                spec,
                source,
                res.queues[source.queue],
                region=res.region,
                endpoint_url=res.endpoint_url,
                concurrency=threads,
                wait_time_s=wait_time_s,
            )
        )
    return pollers
