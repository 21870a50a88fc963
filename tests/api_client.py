"""HTTP helpers shared by the integration suites that drive the local stack as tenants do."""

from __future__ import annotations

import importlib.util
import io
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import numpy as np
import soundfile as sf

TERMINAL = {"ready", "failed", "completed"}


def load_data_module(name: str, path: Path) -> ModuleType:
    """Import a file of test data (tests/data is not a package)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def tone_wav(seconds: float = 0.5, freq: float = 330.0, sr: int = 22050) -> bytes:
    """A decaying stereo tone as 16-bit WAV: small, valid audio."""
    t = np.arange(int(seconds * sr)) / sr
    tone = (0.3 * np.sin(2 * np.pi * freq * t) * np.exp(-3 * (t % 0.25))).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, np.stack([tone, tone], axis=1), sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


class Api:
    """An httpx client for one tenant. A 429 from the per-tenant burst limiter is waited out (Retry-After),
    since these tests are about the answer to a request, not about the limiter."""

    def __init__(self, base_url: str, key: str, tenant: str) -> None:
        self.key, self.tenant = key, tenant
        self.http = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30)

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        for _ in range(20):
            response = self.http.request(method, url, **kwargs)
            if response.status_code != 429 or "too many jobs" in response.text:
                return response
            time.sleep(float(response.headers.get("Retry-After", "1")))
        return response

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", url, **kwargs)

    def wait(self, url: str, timeout: float = 60.0, done: set[str] = TERMINAL) -> dict[str, Any]:
        """Poll until the status is terminal; a deadline, so a stuck job fails the test."""
        deadline = time.monotonic() + timeout
        while True:
            response = self.get(url)
            assert response.status_code == 200, (url, response.status_code, response.text)
            body: dict[str, Any] = response.json()
            if body["status"] in done:
                return body
            assert time.monotonic() < deadline, f"stuck: {url} still {body['status']} after {timeout} s"
            time.sleep(0.3)

    def presign(
        self, kind: str, size: int, filename: str = "song.wav", ctype: str = "audio/wav"
    ) -> dict[str, Any]:
        response = self.post(
            "/api/v1/uploads", json={"filename": filename, "content_type": ctype, "size": size, "kind": kind}
        )
        assert response.status_code == 201, response.text
        return dict(response.json())


def post_form(
    form: dict[str, Any], data: bytes, key: str | None = None, filename: str = "a.wav"
) -> httpx.Response:
    fields = dict(form["upload"]["fields"])
    if key is not None:
        fields["key"] = key
    ctype = fields.get("Content-Type", "application/octet-stream")
    return httpx.post(form["upload"]["url"], data=fields, files={"file": (filename, data, ctype)}, timeout=30)
