"""The client's own decisions, against a scripted transport: which upload path a size takes, what the
presigned form carries, how errors and WebSocket URLs look."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from audiomixer_tools.client import MULTIPART_LIMIT_BYTES, ApiError, Client

SERVER = "http://api.test:8000"
STORAGE = "http://storage.test:5000/bucket"
ID = "0123456789abcdef0123456789abcdef"


class Script:
    """Answers like the API and the storage, and records every request."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if request.url.host == "storage.test":
            return httpx.Response(204)
        if path == "/api/v1/upload/base-track":
            return httpx.Response(202, json={"project_id": ID, "status": "queued", "message": "ok"})
        if path == "/api/v1/uploads":
            body = json.loads(request.content)
            return httpx.Response(
                201,
                json={
                    "id": ID,
                    "kind": body["kind"],
                    "upload": {"url": STORAGE, "fields": {"key": f"uploads/{ID}", "policy": "p"}},
                    "expires_in": 900,
                    "max_bytes": body["size"],
                },
            )
        if path == f"/api/v1/mix/{ID}/download":
            return httpx.Response(307, headers={"location": f"{STORAGE}/mix.wav?X-Amz-Signature=s"})
        return httpx.Response(404, json={"error": {"code": "not_found", "message": "mix not found"}})


@pytest.fixture
def script() -> Script:
    return Script()


@pytest.fixture
def client(script: Script) -> Client:
    return Client(SERVER, "am_key", transport=httpx.MockTransport(script))


def _file(tmp_path: Path, size: int) -> Path:
    path = tmp_path / "song.wav"
    path.write_bytes(b"\0" * size)
    return path


def test_small_song_goes_through_the_api(client: Client, script: Script, tmp_path: Path) -> None:
    sent: list[tuple[int, int]] = []
    song = _file(tmp_path, 1000)
    assert client.upload_song(song, "name", on_progress=lambda a, b: sent.append((a, b))) == ID
    (request,) = script.requests
    assert request.url.path == "/api/v1/upload/base-track"
    assert request.headers["authorization"] == "Bearer am_key"
    assert b'name="project_name"' in request.content and b"audio/wav" in request.content
    assert sent[-1] == (1000, 1000)


def test_large_song_goes_presigned_without_the_key(client: Client, script: Script, tmp_path: Path) -> None:
    song = _file(tmp_path, MULTIPART_LIMIT_BYTES)  # the multipart overhead tips it over
    assert client.upload_song(song) == ID
    asked, posted = script.requests
    assert asked.url.path == "/api/v1/uploads"
    assert json.loads(asked.content) == {
        "filename": "song.wav",
        "content_type": "audio/wav",
        "size": MULTIPART_LIMIT_BYTES,
        "kind": "base-track",
    }
    assert str(posted.url) == STORAGE and "authorization" not in posted.headers
    # The form's fields come first, the file last, with an exact length (not chunked).
    body = posted.content
    assert body.index(b'name="key"') < body.index(b'name="policy"') < body.index(b'name="file"')
    assert int(posted.headers["content-length"]) == len(body)


def test_download_follows_the_redirect_to_storage(client: Client, script: Script, tmp_path: Path) -> None:
    out = client.download_mix(ID, tmp_path / "mix.wav")
    assert out.read_bytes() == b""
    assert [r.url.host for r in script.requests] == ["api.test", "storage.test"]
    assert "authorization" not in script.requests[1].headers
    assert not (tmp_path / "mix.wav.part").exists()


def test_api_errors_carry_the_api_message(client: Client) -> None:
    with pytest.raises(ApiError) as raised:
        client.mix_status(ID)
    assert (raised.value.status, raised.value.code, raised.value.message) == (
        404,
        "not_found",
        "mix not found",
    )


def test_websocket_urls() -> None:
    local = Client("https://mixer.example/", "am_k y")
    assert local.websocket_url("mix", ID) == f"wss://mixer.example/ws/mix/{ID}?token=am_k+y"
    aws = Client("https://x.example", "am_k", ws_url="wss://ws.example/prod")
    assert aws.websocket_url("project", ID) == f"wss://ws.example/prod?token=am_k&project_id={ID}"


@pytest.mark.parametrize(
    ("server", "token", "missing"), [("", "k", "AUDIOMIXER_URL"), ("http://x", "", "AUDIOMIXER_TOKEN")]
)
def test_missing_server_or_key_says_how_to_give_it(server: str, token: str, missing: str) -> None:
    with pytest.raises(ValueError, match=missing):
        Client(server, token)


def test_mix_refuses_what_cannot_be_a_stem_name(client: Client) -> None:
    with pytest.raises(ValueError, match="not a stem name: Kazoo!"):
        client.mix(ID, styles={"Kazoo!": ID})


def test_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDIOMIXER_URL", "http://env.test")
    monkeypatch.setenv("AUDIOMIXER_TOKEN", "am_env")
    client: Any = Client.from_env()
    assert (client.server, client.token) == ("http://env.test", "am_env")
    assert Client.from_env("http://given.test").server == "http://given.test"


def test_large_stems_go_presigned_one_form_each(tmp_path: Path) -> None:
    requests: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        if request.url.host == "storage.test":
            return httpx.Response(204)
        body = json.loads(request.content)
        forms = {s: {"url": f"{STORAGE}/{s}", "fields": {"key": f"uploads/stem/{s}"}} for s in body["stems"]}
        return httpx.Response(
            201,
            json={
                "id": ID,
                "kind": "stems",
                "upload": None,
                "stem_uploads": forms,
                "expires_in": 900,
                "max_bytes": 1,
            },
        )

    drums, bass = tmp_path / "drums.wav", tmp_path / "bass.flac"
    drums.write_bytes(b"\0" * MULTIPART_LIMIT_BYTES)
    bass.write_bytes(b"\1" * 1000)
    sent: list[tuple[int, int]] = []
    client = Client(SERVER, "am_key", transport=httpx.MockTransport(answer))
    assert client.upload_stems({"drums": drums, "bass": bass}, "mine", lambda a, b: sent.append((a, b))) == ID
    asked, *posted = requests
    assert json.loads(asked.content) == {
        "filename": "drums.wav",
        "content_type": "application/octet-stream",  # two types: one for the whole upload
        "size": MULTIPART_LIMIT_BYTES + 1000,
        "kind": "stems",
        "project_name": "mine",
        "stems": {"drums": MULTIPART_LIMIT_BYTES, "bass": 1000},
    }
    assert [str(r.url) for r in posted] == [f"{STORAGE}/drums", f"{STORAGE}/bass"]
    assert sent[-1] == (MULTIPART_LIMIT_BYTES + 1000, MULTIPART_LIMIT_BYTES + 1000)
