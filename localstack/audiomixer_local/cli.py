"""Entry points behind `audiomixer dev|status|invoke|dlq`. Each parses its own arguments and returns an
exit code. `dev` writes {data_dir}/stack.json; the others read it to find the running stack."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

DEFAULT_DATA_DIR = ".audiomixer"


def _parameters(values: list[str]) -> dict[str, str]:
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--parameter expects KEY=VALUE, got {item!r}")
        out[key] = value
    return out


# --- dev ------------------------------------------------------------------------------------------
def dev_main(argv: list[str] | None = None) -> int:
    from audiomixer_local.stack import LocalStack, StackConfig

    parser = argparse.ArgumentParser(
        prog="audiomixer dev",
        description="Run the whole backend on this machine: moto (S3, SQS, DynamoDB, Batch records), the "
        "template's resources, the API, SQS pollers, local Batch jobs and the WebSocket gateway. "
        "Projects, stems, the library, mixes and keys are kept under --data-dir/state across restarts "
        "(--fresh starts empty). AUDIOMIXER_LOCAL_TIME_SCALE scales queue "
        "visibility timeouts (e.g. 0.01 for fault tests).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="API and WebSocket port (0: pick a free one)")
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR, help="stack.json and Batch job logs")
    parser.add_argument("--template", default=None, help="template.yaml (default: the repository's)")
    parser.add_argument("--jobs", type=int, default=1, help="Batch jobs run at once")
    parser.add_argument(
        "--model",
        dest="demucs_model",
        default=os.environ.get("DEMUCS_MODEL", "htdemucs_ft"),
        help="Demucs model for separation jobs (default: $DEMUCS_MODEL or htdemucs_ft)",
    )
    # The option's old name, as `audiomixer remix` and `bench separate` call it --model.
    parser.add_argument("--demucs-model", dest="demucs_model", help=argparse.SUPPRESS)
    parser.add_argument(
        "--poller-concurrency", type=int, default=1, help="threads per SQS event source mapping"
    )
    parser.add_argument(
        "--parameter", action="append", default=[], metavar="KEY=VALUE", help="template parameter"
    )
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="start empty: forget the projects, library, mixes and keys kept under --data-dir/state",
    )
    parser.add_argument(
        "--no-persist", action="store_true", help="keep nothing: state in memory only, as before"
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's request log drowns everything else
    logging.getLogger("botocore").setLevel(logging.WARNING)

    config = StackConfig(
        template=Path(args.template) if args.template else None,
        host=args.host,
        port=args.port,
        data_dir=Path(args.data_dir),
        jobs=args.jobs,
        demucs_model=args.demucs_model,
        poller_concurrency=args.poller_concurrency,
        parameters=_parameters(args.parameter),
        log_level=args.log_level,
        persist=not args.no_persist,
        fresh=args.fresh,
    )
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    stack = LocalStack(config)
    try:
        try:
            stack.start()
        except OSError as exc:
            print(
                f"audiomixer dev: cannot start: {exc} (is another stack running? try --port 0)",
                file=sys.stderr,
            )
            return 1
        except FileNotFoundError as exc:
            print(f"audiomixer dev: {exc}", file=sys.stderr)
            return 1
        print(stack.banner(), flush=True)
        while not stop.wait(0.5):
            if stack._server_thread is not None and not stack._server_thread.is_alive():
                print("audiomixer dev: the HTTP server stopped", file=sys.stderr)
                return 1
        print("stopping ...", file=sys.stderr, flush=True)
        return 0
    finally:
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# --- shared helpers for commands that attach to a running stack -----------------------------------
def read_stack(data_dir: str | Path) -> dict[str, Any]:
    path = Path(data_dir) / "stack.json"
    try:
        info: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise SystemExit(f"no local stack: {path} not found (start one with `audiomixer dev`)") from None
    pid = int(info.get("pid") or 0)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        raise SystemExit(f"no local stack: process {pid} from {path} is not running") from None
    except PermissionError:
        pass
    return info


def _attach(info: dict[str, Any]) -> None:
    """Point this process at the running stack (same env as its handlers)."""
    from audiomixer import aws

    os.environ.update({k: str(v) for k, v in (info.get("env") or {}).items()})
    aws.reset()


def _resources(info: dict[str, Any], template: str | None) -> Any:
    from audiomixer_local.resources import describe_template

    path = template or info.get("template")
    if not path:
        raise SystemExit("no template known; pass --template")
    return describe_template(path)


def _local_url(info: dict[str, Any]) -> str:
    return str(info.get("local_url") or info["api_url"]).replace("://localhost:", "://127.0.0.1:")


# --- status ---------------------------------------------------------------------------------------
def status_main(argv: list[str] | None = None) -> int:
    import httpx

    parser = argparse.ArgumentParser(
        prog="audiomixer status", description="Queues, DLQs and Batch jobs of the local stack"
    )
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    parser.add_argument("--json", action="store_true", help="print the raw status JSON")
    args = parser.parse_args(argv)
    info = read_stack(args.data_dir)
    try:
        status = httpx.get(f"{_local_url(info)}/_local/status", timeout=10).json()
    except httpx.HTTPError as exc:
        print(f"audiomixer status: the stack does not answer: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    print(f"local stack pid {status['pid']}  API {status['api_url']}  AWS {status['endpoint_url']}")
    print(f"\n{'queue':<36} {'visible':>8} {'in flight':>10} {'DLQ depth':>10}")
    for q in status["queues"].values():
        if q.get("is_dlq"):
            continue
        dlq = q.get("dlq_depth", "-") if q.get("dlq") else "-"
        print(f"{q['name']:<36} {q['visible']:>8} {q['in_flight']:>10} {dlq!s:>10}")
    dlqs = [q for q in status["queues"].values() if q.get("is_dlq")]
    if dlqs:
        print(f"\n{'dead-letter queue':<36} {'messages':>8}")
        for q in dlqs:
            print(f"{q['name']:<36} {q['visible'] + q['in_flight']:>8}")
    print(f"\n{'poller':<44} {'invocations':>11} {'errors':>7} {'ok':>6} {'failed':>7}")
    for name, p in status["pollers"].items():
        print(f"{name:<44} {p['invocations']:>11} {p['errors']:>7} {p['succeeded']:>6} {p['failed']:>7}")
    jobs = status.get("jobs") or []
    print(f"\nBatch jobs ({len(jobs)} recent)")
    for job in jobs:
        reason = f"  ({job['statusReason']})" if job.get("statusReason") else ""
        print(f"  {job['jobId']}  {job['jobName']:<30} {job['status']:<10} attempt {job['attempt']}{reason}")
    ws = status.get("websocket") or {}
    if ws:
        print(f"\nWebSocket: {ws.get('connections', 0)} connection(s), stage {ws.get('stage')}")
    return 0


# --- invoke ---------------------------------------------------------------------------------------
def invoke_main(argv: list[str] | None = None) -> int:
    from audiomixer_local import functions

    parser = argparse.ArgumentParser(
        prog="audiomixer invoke",
        description="Run one function's handler in this process against the running local stack "
        "(the no-Docker twin of `sam local invoke`)",
    )
    parser.add_argument("function", help="logical id (IngestFunction), function name or code dir (ingest)")
    parser.add_argument("-e", "--event", default=None, help="event JSON file ('-' for stdin; default {})")
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    parser.add_argument("--template", default=None)
    args = parser.parse_args(argv)
    info = read_stack(args.data_dir)
    res = _resources(info, args.template)
    try:
        spec = res.function(args.function)
    except KeyError as exc:
        print(f"audiomixer invoke: {exc.args[0]}", file=sys.stderr)
        return 2
    if args.event == "-":
        event = json.load(sys.stdin)
    elif args.event:
        event = json.loads(Path(args.event).read_text())
    else:
        event = {}
    _attach(info)
    started = time.monotonic()
    try:
        outcome = functions.invoke(spec, event)
    except Exception as exc:
        print(
            json.dumps(
                {
                    "errorMessage": str(exc),
                    "errorType": type(exc).__name__,
                    "stackTrace": traceback.format_exception(exc),
                },
                indent=2,
            )
        )
        print(f"{spec.logical_id} failed after {time.monotonic() - started:.2f} s", file=sys.stderr)
        return 1
    print(json.dumps(outcome.result, indent=2, default=str))
    note = " (past its Timeout)" if outcome.timed_out else ""
    print(f"{spec.logical_id} returned in {outcome.duration_s:.2f} s{note}", file=sys.stderr)
    return 0


# --- dlq ------------------------------------------------------------------------------------------
def peek(sqs: Any, url: str, limit: int = 1000) -> list[dict[str, Any]]:
    """Every message in a queue without consuming it: receive (hiding them), then make them visible again."""
    seen: dict[str, dict[str, Any]] = {}
    while len(seen) < limit:
        batch = (
            sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=0,
                VisibilityTimeout=30,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages")
            or []
        )
        new = [m for m in batch if m["MessageId"] not in seen]
        if not new:
            break
        seen.update({m["MessageId"]: m for m in new})
    messages = list(seen.values())
    for start in range(0, len(messages), 10):
        chunk = messages[start : start + 10]
        sqs.change_message_visibility_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                for i, m in enumerate(chunk)
            ],
        )
    return messages


def redrive(sqs: Any, dlq_url: str, target_url: str, limit: int | None = None) -> int:
    """Move messages from a DLQ back to its source queue (body and attributes kept); returns how many."""
    moved = 0
    while limit is None or moved < limit:
        batch = (
            sqs.receive_message(
                QueueUrl=dlq_url,
                MaxNumberOfMessages=10 if limit is None else max(1, min(10, limit - moved)),
                WaitTimeSeconds=0,
                VisibilityTimeout=30,
                MessageAttributeNames=["All"],
            ).get("Messages")
            or []
        )
        if not batch:
            break
        for message in batch:
            kwargs: dict[str, Any] = {"QueueUrl": target_url, "MessageBody": message["Body"]}
            if message.get("MessageAttributes"):
                kwargs["MessageAttributes"] = message["MessageAttributes"]
            sqs.send_message(**kwargs)
            sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
            moved += 1
    return moved


def dlq_main(argv: list[str] | None = None) -> int:
    import boto3

    parser = argparse.ArgumentParser(
        prog="audiomixer dlq", description="Inspect and redrive dead-letter queues"
    )
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    parser.add_argument("--template", default=None)
    sub = parser.add_subparsers(dest="command", required=True)
    p_list = sub.add_parser("list", help="show DLQ messages (they stay in the DLQ)")
    p_list.add_argument("queue", nargs="?", help="a DLQ or its source queue (logical id, name or URL)")
    p_list.add_argument("--json", action="store_true")
    p_redrive = sub.add_parser("redrive", help="move a DLQ's messages back to its source queue")
    p_redrive.add_argument("queue", help="a DLQ or its source queue (logical id, name or URL)")
    p_redrive.add_argument("--max", type=int, default=None, help="move at most this many")
    args = parser.parse_args(argv)

    info = read_stack(args.data_dir)
    res = _resources(info, args.template)
    _attach(info)
    sqs = boto3.client("sqs", region_name=res.region, endpoint_url=info.get("endpoint_url"))

    def url(q: Any) -> str:
        return str(sqs.get_queue_url(QueueName=q.name)["QueueUrl"])

    def as_dlq(key: str) -> Any:
        q = res.queue(key)
        return res.queues[q.dlq] if q.dlq else q

    try:
        dlqs = [as_dlq(args.queue)] if args.queue else res.dead_letter_queues
    except KeyError as exc:
        print(f"audiomixer dlq: {exc.args[0]}", file=sys.stderr)
        return 2

    if args.command == "list":
        report = {}
        for dlq in dlqs:
            report[dlq.name] = [
                {
                    "messageId": m["MessageId"],
                    "receiveCount": int(m.get("Attributes", {}).get("ApproximateReceiveCount", 0)),
                    "sentTimestamp": int(m.get("Attributes", {}).get("SentTimestamp", 0)),
                    "body": m["Body"],
                }
                for m in peek(sqs, url(dlq))
            ]
        if args.json:
            print(json.dumps(report, indent=2))
            return 0
        for name, messages in report.items():
            print(f"{name}: {len(messages)} message(s)")
            for m in messages:
                sent = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(m["sentTimestamp"] / 1000))
                body = m["body"] if len(m["body"]) <= 200 else m["body"][:197] + "..."
                print(f"  {m['messageId']}  sent {sent}  received {m['receiveCount']}x  {body}")
        return 0

    dlq = dlqs[0]
    sources = res.dlq_sources(dlq.logical_id)
    if not sources:
        print(f"audiomixer dlq: {dlq.name} is not the dead-letter queue of any queue", file=sys.stderr)
        return 2
    moved = redrive(sqs, url(dlq), url(sources[0]), args.max)
    print(f"moved {moved} message(s) from {dlq.name} to {sources[0].name}")
    return 0
