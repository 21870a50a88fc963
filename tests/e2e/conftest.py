"""The whole local stack (`audiomixer dev`) as a subprocess, driven by real HTTP and WebSocket clients."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Stack:
    api: str
    ws: str
    key: str
    data_dir: Path
    process: subprocess.Popen[bytes]

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}"}

    def ticket(self, key: str | None = None) -> str:
        """A single-use WebSocket ticket (what a browser puts in the URL instead of its API key)."""
        import httpx

        response = httpx.post(f"{self.api}/api/v1/ws-tickets", headers=self.headers(key), timeout=30)
        assert response.status_code == 201, response.text
        return str(response.json()["ticket"])

    def new_key(self, tenant: str) -> str:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "audiomixer_tools.cli",
                "keys",
                "create",
                "--tenant",
                tenant,
                "--data-dir",
                str(self.data_dir),
            ],
            check=True,
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
        )
        return out.stdout.strip().splitlines()[-1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_dev(
    data_dir: Path,
    log_path: Path,
    *extra: str,
    ready: Callable[[dict[str, Any]], bool] = lambda state: True,
    stop_timeout_s: float = 30,
) -> Iterator[tuple[subprocess.Popen[bytes], str, int, dict[str, Any]]]:
    """`audiomixer dev` on `data_dir` as a subprocess, healthy (and `ready(stack.json)`), stopped with Ctrl-C
    (SIGINT) as a user would; yields (process, API URL, port, stack.json)."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDIOMIXER_") and k != "AWS_ENDPOINT_URL"}
    # Short chunks so a few seconds of test audio exercise chunking and progress.
    env.update({"AUDIOMIXER_SEPARATION_CHUNK_S": "2", "AUDIOMIXER_SEPARATION_OVERLAP_S": "0.25"})
    command = [sys.executable, "-m", "audiomixer_tools.cli", "dev", "--port", str(port)]
    command += ["--data-dir", str(data_dir), "--demucs-model", "demucs_unittest", *extra]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        api = f"http://127.0.0.1:{port}"
        try:
            state_file = data_dir / "stack.json"
            deadline = time.monotonic() + 120
            while True:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"audiomixer dev did not start: {log_path.read_text()[-3000:]}")
                try:
                    if state_file.exists() and httpx.get(f"{api}/health", timeout=2).status_code == 200:
                        state = json.loads(state_file.read_text())
                        if ready(state):
                            break
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
            yield process, api, port, state
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=stop_timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp("stack")
    started = time.monotonic()
    with running_dev(data_dir, data_dir / "dev.log") as (process, api, port, state):
        print(f"\n[e2e] audiomixer dev healthy after {time.monotonic() - started:.2f} s")
        stack = Stack(api=api, ws=f"ws://127.0.0.1:{port}", key="", data_dir=data_dir, process=process)
        stack.key = state.get("dev_api_key") or stack.new_key("e2e")
        yield stack
