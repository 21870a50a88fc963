"""`audiomixer bench load`: a bounded load test of the HTTP API against a local stack (loopback only).

N concurrent clients (asyncio + httpx) each create a project (multipart upload of a tiny valid WAV), poll
its status a few times, list projects and request a mix on a ready project of its tenant. Every response
is counted by status code; 429s (burst limiter, concurrent-job limit) are reported apart and are not
errors. Afterwards every 2xx create and mix must be readable and every created project listed ("nothing
lost"); any 5xx, transport error or lost object fails the run (exit 1).

The ready projects come from one real pipeline run (upload, separation, analysis) whose row and stems are
then copied to every client tenant, so each client mixes its own tenant's project. Targets:
  (default)          a local stack started in this process (moto, pollers, local Batch, uvicorn);
  --data-dir DIR     a running `audiomixer dev` (its stack.json): one tenant per client as in-process;
  --api URL --key K  any running API: every client shares K's tenant (expect 429s), mixes on --project
                     or on a project this run takes through the pipeline first.
Bounded by --max-requests and --duration-s."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import logging
import math
import os
import sys
import tempfile
import time
import uuid
import wave
from collections import Counter
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

KINDS = ("create", "status", "list", "mix")


# --- audio --------------------------------------------------------------------------------------------
def _mono_wav(pcm16: bytes, sample_rate: int) -> bytes:
    """A mono 16-bit WAV file around little-endian PCM samples."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm16)
    return buf.getvalue()


def tiny_wav(seconds: float = 0.5, sample_rate: int = 22_050, freq: float = 440.0) -> bytes:
    """A short mono 16-bit sine: valid audio for ingest, a few tens of KB."""
    frames = int(seconds * sample_rate)
    samples = bytearray()
    for n in range(frames):
        value = int(0.3 * 32767 * math.sin(2 * math.pi * freq * n / sample_rate))
        samples += value.to_bytes(2, "little", signed=True)
    return _mono_wav(bytes(samples), sample_rate)


def seed_song(seconds: float, sample_rate: int = 44_100) -> bytes:
    """Clicks, a bass line and a pad, so every stem of the seed project holds something."""
    frames = int(seconds * sample_rate)
    samples = bytearray()
    for n in range(frames):
        t = n / sample_rate
        beat = t % 0.5
        kick = math.sin(2 * math.pi * 60 * beat) * math.exp(-beat * 30) if beat < 0.12 else 0.0
        bass = 0.3 * math.sin(2 * math.pi * (55.0 if t % 2 < 1 else 73.4) * t)
        pad = 0.1 * math.sin(2 * math.pi * 440 * t)
        value = int(max(-1.0, min(1.0, 0.5 * (0.5 * kick + bass + pad))) * 32767)
        samples += value.to_bytes(2, "little", signed=True)
    return _mono_wav(bytes(samples), sample_rate)


# --- results ------------------------------------------------------------------------------------------
@dataclass
class Sample:
    kind: str
    status: int | None  # None: the request never got a response (connection error, timeout)
    latency_s: float
    error: str | None = None


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@dataclass
class LoadReport:
    clients: int
    tenants: int
    target: str
    samples: list[Sample] = field(default_factory=list)
    wall_s: float = 0.0
    setup_s: float = 0.0
    budget_exhausted: bool = False
    timed_out: bool = False
    created: dict[str, str] = field(default_factory=dict)  # project id -> tenant key index
    mixes: dict[str, str] = field(default_factory=dict)  # mix id -> tenant key index
    unreadable: list[str] = field(default_factory=list)
    unlisted: list[str] = field(default_factory=list)
    verify_errors: list[str] = field(default_factory=list)
    final_status: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def server_errors(self) -> int:
        return sum(1 for s in self.samples if s.status is not None and s.status >= 500)

    @property
    def transport_errors(self) -> int:
        return sum(1 for s in self.samples if s.status is None)

    @property
    def lost(self) -> int:
        return len(self.unreadable) + len(self.unlisted)

    @property
    def ok(self) -> bool:
        return not (self.server_errors or self.transport_errors or self.lost or self.verify_errors)

    def summary(self) -> dict[str, Any]:
        per_kind: dict[str, Any] = {}
        for kind in KINDS:
            rows = [s for s in self.samples if s.kind == kind]
            if not rows:
                continue
            latencies = [s.latency_s * 1000 for s in rows]
            codes = Counter(str(s.status) if s.status is not None else "error" for s in rows)
            per_kind[kind] = {
                "requests": len(rows),
                "codes": dict(sorted(codes.items())),
                "2xx": sum(1 for s in rows if s.status is not None and 200 <= s.status < 300),
                "429": codes.get("429", 0),
                "other_4xx": sum(
                    1 for s in rows if s.status is not None and 400 <= s.status < 500 and s.status != 429
                ),
                "5xx": sum(1 for s in rows if s.status is not None and s.status >= 500),
                "errors": codes.get("error", 0),
                "p50_ms": round(percentile(latencies, 50), 1),
                "p95_ms": round(percentile(latencies, 95), 1),
                "p99_ms": round(percentile(latencies, 99), 1),
                "max_ms": round(max(latencies), 1),
            }
        total = len(self.samples)
        return {
            "target": self.target,
            "clients": self.clients,
            "tenants": self.tenants,
            "requests": total,
            "wall_s": round(self.wall_s, 3),
            "setup_s": round(self.setup_s, 3),
            "throughput_rps": round(total / self.wall_s, 1) if self.wall_s > 0 else 0.0,
            "budget_exhausted": self.budget_exhausted,
            "timed_out": self.timed_out,
            "per_kind": per_kind,
            "rate_limited_429": sum(1 for s in self.samples if s.status == 429),
            "server_errors_5xx": self.server_errors,
            "transport_errors": self.transport_errors,
            "transport_error_examples": sorted({s.error for s in self.samples if s.error})[:5],
            "projects_created": len(self.created),
            "mixes_created": len(self.mixes),
            "lost": {"unreadable": self.unreadable[:20], "unlisted": self.unlisted[:20], "count": self.lost},
            "verify_errors": self.verify_errors[:20],
            "final_status": self.final_status,
            "ok": self.ok,
        }

    def render(self) -> str:
        s = self.summary()
        lines = [
            f"load: {s['clients']} clients over {s['tenants']} tenant(s) against {s['target']}",
            f"  {s['requests']} requests in {s['wall_s']:.2f} s = {s['throughput_rps']:.1f} req/s"
            f"{'  (request budget reached)' if s['budget_exhausted'] else ''}"
            f"{'  (wall-clock cap reached)' if s['timed_out'] else ''}; setup {s['setup_s']:.1f} s",
            f"  {'request':<8} {'n':>6} {'2xx':>6} {'429':>5} {'4xx':>5} {'5xx':>5} {'err':>5}"
            f" {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}",
        ]
        for kind, k in s["per_kind"].items():
            counts = f"{k['requests']:>6} {k['2xx']:>6} {k['429']:>5} {k['other_4xx']:>5} {k['5xx']:>5}"
            times = f"{k['p50_ms']:>8.1f} {k['p95_ms']:>8.1f} {k['p99_ms']:>8.1f} {k['max_ms']:>8.1f}"
            lines.append(f"  {kind:<8} {counts} {k['errors']:>5} {times}")
        lines.append(
            f"  429 (rate limited, not errors): {s['rate_limited_429']}; 5xx: {s['server_errors_5xx']};"
            f" transport errors: {s['transport_errors']}"
        )
        for example in s["transport_error_examples"]:
            lines.append(f"    e.g. {example}")
        lines.append(
            f"  created {s['projects_created']} projects and {s['mixes_created']} mixes;"
            f" lost {s['lost']['count']} (unreadable {len(self.unreadable)}, unlisted {len(self.unlisted)})"
        )
        for kind, counts in s["final_status"].items():
            lines.append(f"  {kind} status afterwards: {dict(sorted(counts.items()))}")
        for problem in s["verify_errors"]:
            lines.append(f"  verify: {problem}")
        lines.append("  OK" if s["ok"] else "  FAILED: 5xx, transport errors or lost objects (see above)")
        return "\n".join(lines)


# --- target -------------------------------------------------------------------------------------------
@dataclass
class Target:
    api: str
    keys: list[str]  # one per tenant
    ready: dict[int, str]  # tenant index -> a ready project id of that tenant
    description: str
    stop: Callable[[], None] = lambda: None


class _Budget(Exception):
    pass


class LoadRun:
    def __init__(self, target: Target, args: argparse.Namespace) -> None:
        self.target, self.args = target, args
        self.report = LoadReport(clients=args.clients, tenants=len(target.keys), target=target.description)
        self.upload = tiny_wav(args.upload_seconds)
        self._issued = 0

    async def _request(
        self, client: httpx.AsyncClient, kind: str, method: str, url: str, key: str, **kwargs: Any
    ) -> httpx.Response | None:
        if self._issued >= self.args.max_requests:
            self.report.budget_exhausted = True
            raise _Budget
        self._issued += 1
        started = time.perf_counter()
        try:
            response = await client.request(method, url, headers={"Authorization": f"Bearer {key}"}, **kwargs)
        except httpx.HTTPError as exc:
            self.report.samples.append(
                Sample(kind, None, time.perf_counter() - started, f"{type(exc).__name__}: {exc}"[:200])
            )
            return None
        self.report.samples.append(Sample(kind, response.status_code, time.perf_counter() - started))
        return response

    async def _client(self, client: httpx.AsyncClient, index: int, start: asyncio.Event) -> None:
        tenant = index % len(self.target.keys)
        key = self.target.keys[tenant]
        await start.wait()
        try:
            created = await self._request(
                client,
                "create",
                "POST",
                "/api/v1/upload/base-track",
                key,
                files={"file": (f"load-{index}.wav", self.upload, "audio/wav")},
                data={"project_name": f"load {index}"},
            )
            project_id = None
            if created is not None and created.is_success:
                project_id = created.json()["project_id"]
                self.report.created[project_id] = str(tenant)
            for _ in range(self.args.polls):
                if project_id is None:
                    break
                await self._request(client, "status", "GET", f"/api/v1/projects/{project_id}/status", key)
                await asyncio.sleep(self.args.poll_interval_s)
            await self._request(client, "list", "GET", "/api/v1/projects", key, params={"limit": 20})
            ready = self.target.ready.get(tenant)
            if ready:
                mixed = await self._request(
                    client, "mix", "POST", "/api/v1/mix", key, json={"project_id": ready}
                )
                if mixed is not None and mixed.is_success:
                    self.report.mixes[mixed.json()["mix_id"]] = str(tenant)
        except _Budget:
            return

    async def load(self) -> None:
        limits = httpx.Limits(max_connections=self.args.clients, max_keepalive_connections=self.args.clients)
        timeout = httpx.Timeout(self.args.request_timeout_s)
        async with httpx.AsyncClient(base_url=self.target.api, limits=limits, timeout=timeout) as client:
            start = asyncio.Event()
            tasks = [asyncio.create_task(self._client(client, i, start)) for i in range(self.args.clients)]
            await asyncio.sleep(0)  # every client is waiting: release them together
            began = time.perf_counter()
            start.set()
            done, pending = await asyncio.wait(tasks, timeout=self.args.duration_s)
            self.report.wall_s = time.perf_counter() - began
            if pending:
                self.report.timed_out = True
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
            for task in done:
                if task.exception() is not None:
                    self.report.verify_errors.append(f"client crashed: {task.exception()!r}")

    async def verify(self) -> None:
        """Nothing lost: every 2xx create and mix is readable, every created project is listed."""
        limits = httpx.Limits(max_connections=16)
        async with httpx.AsyncClient(base_url=self.target.api, limits=limits, timeout=60) as client:
            gate = asyncio.Semaphore(16)

            async def get(url: str, key: str, **kwargs: Any) -> httpx.Response | None:
                async with gate:
                    for attempt in range(20):  # verification itself may meet the burst limiter
                        try:
                            response = await client.get(
                                url, headers={"Authorization": f"Bearer {key}"}, **kwargs
                            )
                        except httpx.HTTPError as exc:
                            self.report.verify_errors.append(f"GET {url}: {type(exc).__name__}: {exc}")
                            return None
                        if response.status_code != 429:
                            return response
                        await asyncio.sleep(
                            float(response.headers.get("Retry-After", "1")) * (1 + attempt % 2)
                        )
                    return response

            statuses: dict[str, Counter[str]] = {"project": Counter(), "mix": Counter()}

            async def readable(kind: str, object_id: str, tenant: str) -> None:
                path = f"/api/v1/projects/{object_id}" if kind == "project" else f"/api/v1/mix/{object_id}"
                response = await get(path, self.target.keys[int(tenant)])
                if response is None or response.status_code != 200:
                    code = response.status_code if response is not None else "no response"
                    self.report.unreadable.append(f"{kind} {object_id} ({code})")
                    if response is not None and response.status_code >= 500:
                        self.report.verify_errors.append(f"GET {path}: {response.status_code}")
                    return
                statuses[kind][response.json()["status"]] += 1

            async def listed(tenant: int) -> None:
                wanted = {pid for pid, t in self.report.created.items() if t == str(tenant)}
                seen: set[str] = set()
                cursor = None
                while True:
                    params: dict[str, Any] = {"limit": 100}
                    if cursor:
                        params["cursor"] = cursor
                    response = await get("/api/v1/projects", self.target.keys[tenant], params=params)
                    if response is None or response.status_code != 200:
                        code = response.status_code if response is not None else "no response"
                        self.report.verify_errors.append(f"list for tenant #{tenant}: {code}")
                        return
                    body = response.json()
                    seen.update(item["project_id"] for item in body["items"])
                    cursor = body.get("next_cursor")
                    if not cursor:
                        break
                self.report.unlisted.extend(sorted(wanted - seen))

            jobs: list[Awaitable[None]] = [readable("project", p, t) for p, t in self.report.created.items()]
            jobs += [readable("mix", m, t) for m, t in self.report.mixes.items()]
            jobs += [listed(t) for t in sorted({int(t) for t in self.report.created.values()})]
            await asyncio.gather(*jobs)
            self.report.final_status = {k: dict(v) for k, v in statuses.items() if v}


# --- setting up a target -----------------------------------------------------------------------------
def _wait_ready(api: str, key: str, project_id: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    with httpx.Client(base_url=api, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
        while time.monotonic() < deadline:
            body = client.get(f"/api/v1/projects/{project_id}/status").json()
            if body["status"] == "ready":
                return
            if body["status"] == "failed":
                raise RuntimeError(f"the seed project failed: {body.get('error')}")
            time.sleep(0.5)
    raise RuntimeError(f"the seed project was not ready after {timeout_s} s")


def seed_ready_project(api: str, key: str, seconds: float, timeout_s: float) -> str:
    """Take one song through the whole pipeline (upload, ingest, separation, analysis)."""
    with httpx.Client(base_url=api, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
        response = client.post(
            "/api/v1/upload/base-track",
            files={"file": ("seed.wav", seed_song(seconds), "audio/wav")},
            data={"project_name": "load seed"},
        )
        if response.status_code != 202:
            raise RuntimeError(f"seed upload answered {response.status_code}: {response.text[:300]}")
        project_id = str(response.json()["project_id"])
    _wait_ready(api, key, project_id, timeout_s)
    return project_id


def clone_ready_project(seed_tenant: str, seed_id: str, tenant: str) -> str:
    """Copy a ready project's row, stems and analysis to another tenant (server-side S3 copies)."""
    from audiomixer import aws
    from audiomixer.settings import STEMS, get_settings
    from audiomixer.store import blobs, keys
    from audiomixer.store.models import Project

    bucket = get_settings().bucket
    s3 = aws.client("s3")
    seed = Project.get(seed_tenant, seed_id, consistent_read=True)
    project_id = keys.new_id()
    for stem in STEMS:
        pairs = [(keys.stem(seed_tenant, seed_id, stem), keys.stem(tenant, project_id, stem))]
        pairs.append(
            (keys.stem_analysis(seed_tenant, seed_id, stem), keys.stem_analysis(tenant, project_id, stem))
        )
        for source, dest in pairs:
            if blobs.exists(s3, bucket, source):
                s3.copy_object(Bucket=bucket, Key=dest, CopySource={"Bucket": bucket, "Key": source})
    Project(
        tenant,
        project_id,
        name="load ready",
        status="ready",
        stage="ready",
        progress=100,
        source_kind=seed.source_kind,
        stems=seed.stems.as_dict(),
        duration_s=seed.duration_s,
        size_bytes=0,  # the copies do not count against the load tenants' storage quota
        analysis=seed.analysis,
    ).save(condition=Project.project_id.does_not_exist())
    return project_id


def _tenants_and_projects(
    api: str, args: argparse.Namespace, run_id: str
) -> tuple[list[str], dict[int, str]]:
    """With direct access to the stack's stores: one tenant per client, each with its own ready project."""
    from audiomixer.auth import create_api_key

    seed_tenant = f"load-{run_id}-seed"
    seed_key = create_api_key(seed_tenant, label="bench load seed")
    print(
        f"seeding: one {args.seed_seconds:.0f} s song through the pipeline ...", file=sys.stderr, flush=True
    )
    started = time.monotonic()
    seed_id = seed_ready_project(api, seed_key, args.seed_seconds, args.seed_timeout_s)
    print(f"seed project ready in {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)

    def tenant(i: int) -> tuple[str, str]:
        name = f"load-{run_id}-{i}"
        return create_api_key(name, label="bench load"), clone_ready_project(seed_tenant, seed_id, name)

    with ThreadPoolExecutor(max_workers=8) as pool:
        made = list(pool.map(tenant, range(args.tenants or args.clients)))
    return [k for k, _ in made], {i: project for i, (_, project) in enumerate(made)}


def in_process_target(args: argparse.Namespace, run_id: str) -> Target:
    from audiomixer_local.stack import LocalStack, StackConfig

    # Handlers' structured logs, metrics and moto's request log would bury the report.
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    data_dir = Path(args.data_dir_out or tempfile.mkdtemp(prefix="audiomixer-load-"))
    stack = LocalStack(
        StackConfig(
            port=0,
            data_dir=data_dir,
            demucs_model=args.demucs_model,
            jobs=1,
            seed_dev_tenant=False,
            poller_concurrency=args.poller_concurrency,
        )
    )
    stack.start()
    try:
        keys, ready = _tenants_and_projects(stack.local_url, args, run_id)
    except BaseException:
        stack.stop()
        raise
    return Target(stack.local_url, keys, ready, f"in-process local stack {stack.local_url}", stack.stop)


def attached_target(args: argparse.Namespace, run_id: str) -> Target:
    from audiomixer_local.cli import _attach, _local_url, read_stack

    info = read_stack(args.data_dir)
    _attach(info)
    api = args.api or _local_url(info)
    keys, ready = _tenants_and_projects(api, args, run_id)
    return Target(api, keys, ready, f"running stack {api} (stack.json in {args.data_dir})")


def remote_target(args: argparse.Namespace) -> Target:
    project = args.project
    if not project:
        print("seeding: one song through the pipeline ...", file=sys.stderr, flush=True)
        project = seed_ready_project(args.api, args.key, args.seed_seconds, args.seed_timeout_s)
    return Target(args.api, [args.key], {0: project}, f"{args.api} (one tenant)")


# --- entry point --------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="audiomixer bench load", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--clients", type=int, default=200, help="concurrent clients (default 200)")
    parser.add_argument(
        "--tenants", type=int, default=0, help="tenants to spread clients over (default: one each)"
    )
    parser.add_argument("--polls", type=int, default=3, help="status polls per client")
    parser.add_argument("--poll-interval-s", type=float, default=0.2)
    parser.add_argument("--max-requests", type=int, default=5000, help="total request budget")
    parser.add_argument("--duration-s", type=float, default=300.0, help="wall-clock cap of the load phase")
    parser.add_argument("--request-timeout-s", type=float, default=60.0)
    parser.add_argument("--upload-seconds", type=float, default=0.5, help="length of each tiny upload")
    parser.add_argument("--seed-seconds", type=float, default=3.0, help="length of the seed song")
    parser.add_argument("--seed-timeout-s", type=float, default=600.0)
    parser.add_argument(
        "--model", dest="demucs_model", default=os.environ.get("DEMUCS_MODEL", "demucs_unittest")
    )
    parser.add_argument("--demucs-model", dest="demucs_model", help=argparse.SUPPRESS)  # the old name
    parser.add_argument("--poller-concurrency", type=int, default=1)
    parser.add_argument("--api", default=None, help="a running API (with --key, or with --data-dir)")
    parser.add_argument("--key", default=None, help="API key for --api (all clients share its tenant)")
    parser.add_argument("--project", default=None, help="with --api/--key: a ready project to mix")
    parser.add_argument(
        "--data-dir", default=None, help="attach to the `audiomixer dev` whose stack.json is here"
    )
    parser.add_argument("--data-dir-out", default=None, help="in-process: where the stack keeps its files")
    parser.add_argument("--json", default=None, help="also write the summary as JSON here")
    args = parser.parse_args(argv)
    if args.clients < 1 or args.max_requests < 1 or args.duration_s <= 0:
        parser.error("--clients, --max-requests and --duration-s must be positive")
    if args.api and not (args.key or args.data_dir):
        parser.error("--api needs --key (or --data-dir of the stack it belongs to)")
    return args


def run(args: argparse.Namespace) -> LoadReport:
    run_id = uuid.uuid4().hex[:8]
    started = time.monotonic()
    if args.data_dir:
        target = attached_target(args, run_id)
    elif args.api:
        target = remote_target(args)
    else:
        target = in_process_target(args, run_id)
    try:
        load = LoadRun(target, args)
        load.report.setup_s = time.monotonic() - started
        print(
            f"load: {args.clients} clients, {len(target.keys)} tenant(s),"
            f" budget {args.max_requests} requests, cap {args.duration_s:.0f} s",
            file=sys.stderr,
            flush=True,
        )
        asyncio.run(load.load())
        asyncio.run(load.verify())
        return load.report
    finally:
        target.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = run(args)
    print(report.render())
    if args.json:
        Path(args.json).write_text(json.dumps(report.summary(), indent=2))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["LoadReport", "Sample", "main", "parse_args", "percentile", "run", "tiny_wav"]
