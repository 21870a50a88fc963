"""The embedded local stack in one process: moto's server on loopback, the template's resources, SQS
pollers, the local Batch runner, and uvicorn serving the FastAPI app behind the WebSocket gateway.
State lives in moto's memory; with `persist` it is saved under {data_dir}/state and restored on the next
start (persistence.py)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from audiomixer_local import s3_post_policy
from audiomixer_local.batch import LocalBatchRunner
from audiomixer_local.gateway import WebSocketGateway
from audiomixer_local.persistence import STATE_DIR, Restored, StateStore, end_interrupted_jobs
from audiomixer_local.pollers import SqsPoller, build_pollers
from audiomixer_local.resources import LocalResources, create_resources, describe_queues
from audiomixer_local.router import LocalRouter
from audiomixer_local.scheduler import Schedule, build_schedules

log = logging.getLogger("audiomixer_local")

STACK_FILE = "stack.json"


def find_template(explicit: str | Path | None = None) -> Path:
    """template.yaml: the explicit path, else the nearest one above the cwd, else the repository's."""
    if explicit:
        path = Path(explicit)
        if not path.exists():
            raise FileNotFoundError(f"template {path} does not exist")
        return path.resolve()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "template.yaml").exists():
            return folder / "template.yaml"
    import audiomixer

    repo = Path(audiomixer.__file__).resolve().parents[3] / "template.yaml"
    if repo.exists():
        return repo
    raise FileNotFoundError("template.yaml not found (use --template)")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


_DYNAMODB_ITEM_OPS = (
    "put_item",
    "update_item",
    "delete_item",
    "transact_write_items",
    "get_item",
    "query",
    "scan",
)
_dynamodb_lock = threading.RLock()


def serialize_dynamodb_items() -> None:
    """moto's DynamoDB checks a ConditionExpression and then writes, with no lock between the two, so two
    concurrent conditional writes through the threaded server can both pass (a version check then loses
    an update). DynamoDB applies each item operation atomically; one lock per process gives the same."""
    import functools

    from moto.dynamodb.models import DynamoDBBackend

    for name in _DYNAMODB_ITEM_OPS:
        method = getattr(DynamoDBBackend, name)
        if getattr(method, "_audiomixer_serialized", False):
            continue

        def locked(self: Any, *args: Any, __method: Any = method, **kwargs: Any) -> Any:
            with _dynamodb_lock:
                return __method(self, *args, **kwargs)

        functools.update_wrapper(locked, method)
        locked._audiomixer_serialized = True  # type: ignore[attr-defined]
        setattr(DynamoDBBackend, name, locked)


@dataclass
class StackConfig:
    template: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8000  # 0 picks a free port
    data_dir: Path = Path(".audiomixer")
    jobs: int = 1
    demucs_model: str | None = None
    poller_concurrency: int = 1
    poll_wait_s: int = 1
    moto_port: int = 0
    app: Any = None  # an ASGI app to serve instead of audiomixer.api.app:app (tests)
    seed_dev_tenant: bool = True
    parameters: dict[str, str] = field(default_factory=dict)
    log_level: str = "warning"
    # Keep tables and objects under {data_dir}/state across restarts (audiomixer dev turns it on).
    persist: bool = False
    fresh: bool = False  # with persist: forget the saved state and start empty


class LocalStack:
    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.res: LocalResources | None = None
        self.moto: Any = None
        self.endpoint_url = ""
        self.api_url = ""
        self.local_url = ""
        self.ws_url = ""
        self.port = 0
        self.pollers: list[SqsPoller] = []
        self.schedules: list[Schedule] = []
        self.batch: LocalBatchRunner | None = None
        self.gateway: WebSocketGateway | None = None
        self.server: Any = None
        self.dev_api_key: str | None = None
        self.ready_s = 0.0
        self._server_thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="ws-handler")
        self._saved_env: dict[str, str | None] = {}
        self.state: StateStore | None = None
        self.restored: Restored | None = None

    # --- environment ------------------------------------------------------------------------------
    def _setenv(self, values: dict[str, str]) -> None:
        from audiomixer import aws

        for key, value in values.items():
            self._saved_env.setdefault(key, os.environ.get(key))
            os.environ[key] = value
        aws.reset()

    def _restore_env(self) -> None:
        from audiomixer import aws

        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env.clear()
        aws.reset()

    # --- lifecycle --------------------------------------------------------------------------------
    def start(self) -> LocalStack:
        from moto.server import ThreadedMotoServer

        started = time.monotonic()
        cfg = self.config
        template = find_template(cfg.template)
        moto_port = cfg.moto_port or free_port()
        serialize_dynamodb_items()
        self.moto = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
        self.moto.start()
        s3_post_policy.install()
        self.endpoint_url = f"http://127.0.0.1:{moto_port}"
        self._setenv(
            {
                "AWS_ENDPOINT_URL": self.endpoint_url,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_REGION": "us-east-1",
                # CloudWatch metric records would only flood the console locally.
                "POWERTOOLS_METRICS_DISABLED": os.environ.get("POWERTOOLS_METRICS_DISABLED", "true"),
                # Local development may put the dev key in a WebSocket URL; on AWS only tickets work.
                "AUDIOMIXER_WS_ALLOW_KEY_IN_URL": os.environ.get("AUDIOMIXER_WS_ALLOW_KEY_IN_URL", "true"),
            }
        )
        sock = _bind(cfg.host, cfg.port)
        self.port = int(sock.getsockname()[1])
        public_host = "127.0.0.1" if cfg.host in ("0.0.0.0", "::") else cfg.host
        if cfg.port == 8000 and public_host == "127.0.0.1":
            public_host = "localhost"
        self.api_url = f"http://{public_host}:{self.port}"
        bound = "127.0.0.1" if cfg.host in ("0.0.0.0", "::", "localhost") else cfg.host
        self.local_url = f"http://{bound}:{self.port}"
        self.ws_url = f"ws://{public_host}:{self.port}"
        try:
            parameters = with_console_origins(template, cfg.parameters, [self.api_url, self.local_url])
            self.res = create_resources(template, endpoint_url=self.endpoint_url, parameters=parameters)
            stage = self.res.websocket.stage if self.res.websocket else "prod"
            self.res.env["AUDIOMIXER_WS_ENDPOINT"] = f"http://127.0.0.1:{self.port}/{stage}"
            extra = {"DEMUCS_MODEL": cfg.demucs_model} if cfg.demucs_model else {}
            self._setenv({**self.res.process_env(), **extra})
            if cfg.persist:
                self._restore_state()
            self.batch = LocalBatchRunner(
                self.res,
                max_jobs=cfg.jobs,
                extra_env=extra,
                log_dir=Path(cfg.data_dir) / "batch",
            ).start()
            self.pollers = build_pollers(
                self.res, concurrency=cfg.poller_concurrency, wait_time_s=cfg.poll_wait_s
            )
            for poller in self.pollers:
                poller.start()
            self.schedules = build_schedules(self.res)
            for schedule in self.schedules:
                schedule.start()
            self.gateway = WebSocketGateway(self.res.websocket, self.res.functions, pool=self._pool)
            self._serve(sock)
            if cfg.seed_dev_tenant:
                self.dev_api_key = seed_dev_tenant()
            if self.state is not None and self.restored is not None:
                self.restored.interrupted = end_interrupted_jobs()
                log.info("local state: %s", self.restored.summary())
                self.state.start()
            self.ready_s = time.monotonic() - started
            self.write_stack_file()
        except BaseException:
            self.stop()
            raise
        return self

    def _restore_state(self) -> None:
        assert self.res is not None
        folder = Path(self.config.data_dir) / STATE_DIR
        if self.config.fresh and folder.exists():
            shutil.rmtree(folder)
        self.state = StateStore(
            folder,
            self.res.tables,
            self.res.buckets,
            region=self.res.region,
            endpoint_url=self.endpoint_url,
        )
        self.restored = self.state.restore()

    def _serve(self, sock: socket.socket) -> None:
        import uvicorn

        assert self.gateway is not None
        assert self.res is not None
        api_function = self.res.http_api_function
        router = LocalRouter(
            self.gateway,
            self.config.app,
            status=self.status,
            principal=self.res.principals.get(api_function) if api_function else None,
        )
        config = uvicorn.Config(
            router,
            lifespan="on",
            ws="websockets-sansio",
            log_level=self.config.log_level,
            timeout_graceful_shutdown=3,
            # uvicorn closes an idle keep-alive connection after 5 s; a client that pools connections
            # (httpx) can send on one just as it closes and gets a ReadError. API Gateway keeps idle client
            # connections far longer, so the local stack does too.
            timeout_keep_alive=65,
        )
        self.server = uvicorn.Server(config)
        logging.getLogger("uvicorn.error").addFilter(_DenialNoise())
        self._server_thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [sock]}, name="uvicorn", daemon=True
        )
        self._server_thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self._server_thread.is_alive():
                raise RuntimeError("uvicorn exited during startup (see the log above)")
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start within 30 s")
            time.sleep(0.02)

    def stop(self) -> None:
        for poller in self.pollers:
            poller.signal_stop()
        if self.server is not None:
            self.server.should_exit = True
        if self._server_thread is not None:
            self._server_thread.join(10)
        for poller in self.pollers:
            poller.stop(timeout=5)
        for schedule in self.schedules:
            schedule.stop()
        if self.batch is not None:
            self.batch.stop()
        if self.state is not None and self.moto is not None:
            try:
                self.state.stop()
            except Exception:
                log.exception("saving the local state")
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self.moto is not None:
            try:
                self.moto.stop()
            except Exception:
                log.exception("stopping moto")
            self.moto = None
        stack_file = Path(self.config.data_dir) / STACK_FILE
        try:
            if json.loads(stack_file.read_text()).get("pid") == os.getpid():
                stack_file.unlink()
        except (OSError, ValueError):
            pass
        self._restore_env()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- state ------------------------------------------------------------------------------------
    def write_stack_file(self) -> Path:
        assert self.res is not None
        data_dir = Path(self.config.data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        path = data_dir / STACK_FILE
        payload = {
            "pid": os.getpid(),
            "endpoint_url": self.endpoint_url,
            "api_url": self.api_url,
            "local_url": self.local_url,
            "ws_url": self.ws_url,
            "ws_endpoint": self.res.env.get("AUDIOMIXER_WS_ENDPOINT"),
            "template": str(self.res.template.path),
            "data_dir": str(data_dir.resolve()),
            "env": self.res.process_env(),
            "dev_tenant": "dev" if self.dev_api_key else None,
            "dev_api_key": self.dev_api_key,
            "started_at": time.time(),
        }
        path.write_text(json.dumps(payload, indent=2))
        path.chmod(0o600)
        return path

    def status(self) -> dict[str, Any]:
        assert self.res is not None
        sqs = boto3.client("sqs", region_name=self.res.region, endpoint_url=self.endpoint_url)
        return {
            "pid": os.getpid(),
            "api_url": self.api_url,
            "endpoint_url": self.endpoint_url,
            "queues": describe_queues(self.res, sqs),
            "pollers": {p.name: p.stats.as_dict() for p in self.pollers},
            "schedules": {s.spec.logical_id: s.describe() for s in self.schedules},
            "jobs": self.batch.jobs_summary() if self.batch else [],
            # Batch state-change events no function could handle (on AWS: BatchEventsDLQ and its alarm).
            "failed_event_deliveries": list(self.batch.failed_deliveries) if self.batch else [],
            "websocket": self.gateway.describe() if self.gateway else None,
        }

    def _state_line(self) -> str:
        if self.state is None:
            return "  State       in memory only (--no-persist): everything is gone when this stops."
        restored = f" ({self.restored.summary()})" if self.restored else ""
        return f"  State       kept in {self.state.folder}{restored}; --fresh starts empty"

    def banner(self) -> str:
        assert self.res is not None
        key = self.dev_api_key or "<none: audiomixer.auth unavailable>"
        lines = [
            "Audio Mixer local stack (moto + uvicorn + SQS pollers + local Batch + WebSocket gateway)",
            f"  API         {self.api_url}/api/v1   (health: {self.api_url}/health)",
            f"  Docs        {self.api_url}/docs",
            f"  WebSocket   {self.ws_url}/ws/project/{{id}}   {self.ws_url}/ws/mix/{{id}}"
            f"   (?ticket= from POST /api/v1/ws-tickets; locally ?token=KEY works too;"
            f" API Gateway form: {self.ws_url}/?project_id={{id}}&ticket=T)",
            f"  AWS (moto)  {self.endpoint_url}   (AWS_ENDPOINT_URL; credentials testing/testing)",
            f"  Dev tenant  dev   API key: {key}",
            f"  Try         curl -H 'Authorization: Bearer {key}' {self.api_url}/api/v1/projects",
            f"  Queues      {', '.join(q.name for q in self.res.queues.values())}",
            f"  Batch       up to {self.config.jobs} job(s) at once as local subprocesses;"
            f" logs in {Path(self.config.data_dir) / 'batch'}",
            self._state_line(),
            f"  Status      audiomixer status   (stack file {Path(self.config.data_dir) / STACK_FILE})",
            f"ready in {self.ready_s:.2f} s — Ctrl-C stops everything",
        ]
        return "\n".join(lines)


def with_console_origins(template: Path, parameters: dict[str, str], origins: list[str]) -> dict[str, str]:
    """The web console is served by the API, so the browser posts presigned forms to the bucket and reads
    stems from it from the API's origin: that origin joins the template's CORS allow-lists (the bucket's
    and the API's), as the API's URL does on AWS (README, "Deploy to AWS")."""
    from audiomixer_local.template import Template

    values = Template.from_file(template, parameters=parameters).parameters
    if "CorsAllowOriginList" not in values or "CorsAllowOrigins" not in values:
        return dict(parameters)
    listed = [o for o in values["CorsAllowOriginList"].split(",") if o]
    as_json = [str(o) for o in json.loads(values["CorsAllowOrigins"] or "[]")]
    return {
        **parameters,
        "CorsAllowOriginList": ",".join(dict.fromkeys([*listed, *origins])),
        "CorsAllowOrigins": json.dumps(list(dict.fromkeys([*as_json, *origins]))),
    }


class _DenialNoise(logging.Filter):
    """uvicorn's sans-io WebSocket protocol logs an error after every handshake the app refuses with an
    HTTP response (a `$connect` answering 401/403/404), although the response went out correctly."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "ASGI callable returned without completing handshake."


def seed_dev_tenant() -> str | None:
    """Create the "dev" tenant's API key with audiomixer.auth; None when auth is not available."""
    try:
        from audiomixer import auth
    except ImportError as exc:
        log.warning("no dev API key: audiomixer.auth is not importable (%s)", exc)
        return None
    try:
        created = auth.create_api_key("dev", label="dev")
    except Exception:
        log.exception("no dev API key: create_api_key failed")
        return None
    return api_key_text(created)


def api_key_text(created: Any) -> str | None:
    """The plaintext key out of whatever create_api_key returns (str, tuple, mapping or object)."""
    if isinstance(created, str):
        return created
    if isinstance(created, (tuple, list)):
        return next((x for x in created if isinstance(x, str)), None)
    if isinstance(created, dict):
        for name in ("api_key", "key", "plaintext", "token"):
            if isinstance(created.get(name), str):
                return str(created[name])
    for name in ("api_key", "key", "plaintext", "token"):
        value = getattr(created, name, None)
        if isinstance(value, str):
            return value
    return None
