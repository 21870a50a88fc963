"""A small typed client of the public API (/api/v1) and its WebSocket, for scripts, the CLI and the
end-to-end tests. It never runs in AWS. Responses are the API's own models (audiomixer.api.schemas), so
a field renamed in the API breaks here at once.

    client = Client.from_env()                      # AUDIOMIXER_URL, AUDIOMIXER_TOKEN
    project_id = client.upload_song("song.wav")     # multipart or presigned, by size
    client.wait("project", project_id)              # WebSocket events until ready (or ApiError)
    sound_id = client.add_styles(["kick.wav"])[0]
    mix_id = client.mix(project_id, styles={"drums": sound_id})
    client.wait("mix", mix_id)
    client.download_mix(mix_id, "mix.wav")
"""

from __future__ import annotations

import json
import mimetypes
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal, TypeVar, cast
from urllib.parse import quote, urlencode, urlsplit

import httpx
from pydantic import BaseModel

from audiomixer.api.schemas import (
    MixAccepted,
    MixConfig,
    MixList,
    MixRequest,
    MixStatusResponse,
    PresignedPost,
    PresignRequest,
    PresignResponse,
    ProjectDetail,
    ProjectList,
    SoundDetail,
    StyleSoundsAccepted,
    UploadAccepted,
)
from audiomixer.mix_settings import MixSettings, StemConfig
from audiomixer.settings import STEMS
from audiomixer.stem_sets import STEM_NAME

Kind = Literal["project", "mix", "sound"]
M = TypeVar("M", bound=BaseModel)

# What the API takes through multipart (API Gateway + Lambda carry ~6 MB); its 413 says the same.
MULTIPART_LIMIT_BYTES = 4 * 1024 * 1024
MULTIPART_OVERHEAD_BYTES = 16 * 1024
TERMINAL: dict[str, frozenset[str]] = {
    "project": frozenset({"ready", "failed"}),
    "mix": frozenset({"completed", "failed"}),
    "sound": frozenset({"ready", "failed"}),
}
SUCCESS = {"project": "ready", "mix": "completed", "sound": "ready"}
AUDIO_TYPES = {".wav": "audio/wav", ".flac": "audio/flac", ".mp3": "audio/mpeg", ".ogg": "audio/ogg"}

ProgressCallback = Callable[[int, int], None]  # (bytes sent, bytes in all)


class ApiError(Exception):
    """An answer of the API that is not a success: its status, code and message (what a person reads)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class Event:
    """One WebSocket status event: {type, id, status, stage, progress, detail, at}."""

    type: str
    id: str
    status: str
    stage: str | None
    progress: int
    detail: str | None
    at: str | None

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> Event:
        return cls(
            type=str(data.get("type", "")),
            id=str(data.get("id", "")),
            status=str(data.get("status", "")),
            stage=data.get("stage"),
            progress=int(data.get("progress") or 0),
            detail=data.get("detail"),
            at=data.get("at"),
        )

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL.get(self.type, frozenset())


class _ProgressReader:
    """A file that reports how much of it has been read (httpx streams multipart files in chunks)."""

    def __init__(self, raw: IO[bytes], total: int, callback: ProgressCallback | None) -> None:
        self.raw, self.total, self.callback, self.sent = raw, total, callback, 0

    # httpx sizes the multipart body from fileno() (a Content-Length, not chunked) and rewinds with seek().
    def fileno(self) -> int:
        return self.raw.fileno()

    def seek(self, offset: int, whence: int = 0) -> int:
        position = self.raw.seek(offset, whence)
        self.sent = position
        return position

    def tell(self) -> int:
        return self.raw.tell()

    def read(self, size: int = -1) -> bytes:
        chunk = self.raw.read(size)
        self.sent += len(chunk)
        if self.callback is not None and chunk:
            self.callback(self.sent, self.total)
        return chunk


def content_type_of(path: Path) -> str:
    guessed = AUDIO_TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] or ""
    return guessed if guessed.startswith("audio/") else "application/octet-stream"


class Client:
    """The public API of one server, authenticated with one API key."""

    def __init__(
        self,
        server: str,
        token: str,
        *,
        ws_url: str | None = None,
        timeout_s: float = 60.0,
        multipart_limit_bytes: int = MULTIPART_LIMIT_BYTES,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not server:
            raise ValueError("no server: pass --server or set AUDIOMIXER_URL (e.g. http://localhost:8000)")
        if not token:
            raise ValueError("no API key: pass --token or set AUDIOMIXER_TOKEN")
        self.server = server.rstrip("/")
        self.token = token
        self.ws_url = ws_url
        self.multipart_limit_bytes = multipart_limit_bytes
        self.http = httpx.Client(
            base_url=self.server,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout_s,
            transport=transport,
        )
        # Presigned storage URLs: no API key on these requests, the URL's signature is the grant.
        self.storage = httpx.Client(timeout=timeout_s, transport=transport)

    @classmethod
    def from_env(cls, server: str | None = None, token: str | None = None, **kwargs: Any) -> Client:
        """Explicit values first, then AUDIOMIXER_URL / AUDIOMIXER_TOKEN / AUDIOMIXER_WS_URL."""
        kwargs.setdefault("ws_url", os.environ.get("AUDIOMIXER_WS_URL") or None)
        return cls(
            server or os.environ.get("AUDIOMIXER_URL", ""),
            token or os.environ.get("AUDIOMIXER_TOKEN", ""),
            **kwargs,
        )

    def close(self) -> None:
        self.http.close()
        self.storage.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- plumbing ---------------------------------------------------------------------------------
    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, "/api/v1" + path, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiError(0, "network", f"cannot reach {self.server}: {exc}") from None
        if response.is_error:
            raise _error_of(response)
        return response

    def _get(self, path: str, model: type[M], **params: Any) -> M:
        return model.model_validate(self._request("GET", path, params=params or None).json())

    def _fits_multipart(self, size: int) -> bool:
        return size + MULTIPART_OVERHEAD_BYTES <= self.multipart_limit_bytes

    # --- uploads ----------------------------------------------------------------------------------
    def upload_song(
        self, path: str | Path, name: str | None = None, on_progress: ProgressCallback | None = None
    ) -> str:
        """Upload a song; returns the new project's id. Files over the multipart limit go through a
        presigned S3 POST (the caller never sees the difference)."""
        path = Path(path)
        size = path.stat().st_size
        if self._fits_multipart(size):
            with path.open("rb") as f:
                files = {"file": (path.name, _ProgressReader(f, size, on_progress), content_type_of(path))}
                data = {"project_name": name} if name else None
                try:
                    response = self._request("POST", "/upload/base-track", files=files, data=data)
                    return UploadAccepted.model_validate(response.json()).project_id
                except ApiError as exc:
                    if exc.status != 413:  # a server with a smaller limit: go presigned
                        raise
        return self._presigned(path, "base-track", name, on_progress)

    def upload_stems(
        self,
        stems: Mapping[str, str | Path],
        name: str | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> str:
        """Bring your own stems ({"drums": path, ...}, 1-4 of them); returns the new project's id. Over
        the multipart limit each stem goes to storage through a presigned form of its own."""
        unknown = set(stems) - set(STEMS)
        if unknown or not stems:
            raise ValueError(f"stems are {', '.join(STEMS)}; got {', '.join(sorted(stems)) or 'none'}")
        paths = {stem: Path(p) for stem, p in stems.items()}
        sizes = {stem: p.stat().st_size for stem, p in paths.items()}
        total = sum(sizes.values())
        if self._fits_multipart(total):
            files = {stem: (p.name, p.read_bytes(), content_type_of(p)) for stem, p in paths.items()}
            data = {"project_name": name} if name else None
            response = self._request("POST", "/upload/stems", files=files, data=data)
            return UploadAccepted.model_validate(response.json()).project_id
        types = {content_type_of(p) for p in paths.values()}
        content_type = types.pop() if len(types) == 1 else "application/octet-stream"  # one type per upload
        request = PresignRequest(
            filename=next(iter(paths.values())).name,
            content_type=content_type,
            size=total,
            kind="stems",
            project_name=name,
            stems=sizes,
        )
        response = self._request("POST", "/uploads", json=request.model_dump(exclude_none=True))
        created = PresignResponse.model_validate(response.json())
        forms = created.stem_uploads or {}
        done = 0
        for stem, path in paths.items():
            if stem not in forms:
                raise ApiError(502, "no_form", f"the API answered without an upload form for {stem}")

            def progress(sent: int, _total: int, before: int = done) -> None:
                if on_progress is not None:
                    on_progress(before + sent, total)

            self._post_form(forms[stem], path, content_type, progress)
            done += sizes[stem]
        return created.id

    def add_styles(self, paths: Sequence[str | Path]) -> list[str]:
        """Add style sounds to the library; returns their ids in the order given."""
        ids: list[str] = []
        for path in map(Path, paths):
            size = path.stat().st_size
            if self._fits_multipart(size):
                files = [("files", (path.name, path.read_bytes(), content_type_of(path)))]
                body = self._request("POST", "/upload/style-sound", files=files).json()
                ids.extend(s.sound_id for s in StyleSoundsAccepted.model_validate(body).sounds)
            else:
                ids.append(self._presigned(path, "style-sound", path.stem, None))
        return ids

    def _presigned(
        self,
        path: Path,
        kind: Literal["base-track", "style-sound"],
        name: str | None,
        on_progress: ProgressCallback | None,
    ) -> str:
        size = path.stat().st_size
        request = PresignRequest(
            filename=path.name, content_type=content_type_of(path), size=size, kind=kind, project_name=name
        )
        response = self._request("POST", "/uploads", json=request.model_dump(exclude_none=True))
        created = PresignResponse.model_validate(response.json())
        if created.upload is None:
            raise ApiError(502, "no_form", "the API answered without an upload form")
        self._post_form(created.upload, path, request.content_type, on_progress)
        return created.id

    def _post_form(
        self, form: PresignedPost, path: Path, content_type: str, on_progress: ProgressCallback | None
    ) -> None:
        """Send one file straight to storage with a presigned POST form (its fields, then the file)."""
        with path.open("rb") as f:
            reader = cast(IO[bytes], _ProgressReader(f, path.stat().st_size, on_progress))
            files = {"file": (path.name, reader, content_type)}
            try:
                posted = self.storage.post(form.url, data=form.fields, files=files)
            except httpx.HTTPError as exc:
                raise ApiError(0, "network", f"the upload to storage failed: {exc}") from None
        if posted.is_error:
            message = f"storage refused the upload: {_s3_message(posted)}"
            raise ApiError(posted.status_code, "storage", message)

    # --- reading ----------------------------------------------------------------------------------
    def project(self, project_id: str) -> ProjectDetail:
        return self._get(f"/projects/{quote(project_id, safe='')}", ProjectDetail)

    def projects(self, limit: int = 20) -> ProjectList:
        return self._get("/projects", ProjectList, limit=limit)

    def sound(self, sound_id: str) -> SoundDetail:
        return self._get(f"/library/{quote(sound_id, safe='')}", SoundDetail)

    def mix_status(self, mix_id: str) -> MixStatusResponse:
        return self._get(f"/mix/{quote(mix_id, safe='')}", MixStatusResponse)

    def mixes(self, limit: int = 20) -> MixList:
        return self._get("/mixes", MixList, limit=limit)

    def delete_project(self, project_id: str) -> None:
        self._request("DELETE", f"/projects/{quote(project_id, safe='')}")

    # --- mixing -----------------------------------------------------------------------------------
    def mix(
        self,
        project_id: str,
        styles: Mapping[str, str] | None = None,
        *,
        volumes: Mapping[str, float] | None = None,
        modes: Mapping[str, str] | None = None,
        muted: Sequence[str] = (),
        settings: MixSettings | None = None,
    ) -> str:
        """Queue a render; returns the mix id. `styles` maps the project's stems to style sound ids;
        stems left out keep their audio."""
        styles, volumes, modes = dict(styles or {}), dict(volumes or {}), dict(modes or {})
        named = list(dict.fromkeys([*styles, *volumes, *modes, *muted]))
        bad = [stem for stem in named if not STEM_NAME.match(stem)]
        if bad:  # the API answers 422 for a stem the project lacks; a name that cannot be one stops here
            raise ValueError(f"not a stem name: {', '.join(bad)} (stems are e.g. {', '.join(STEMS)})")
        config = MixConfig(
            {
                stem: StemConfig(
                    enabled=stem not in muted,
                    style_sound_id=styles.get(stem),
                    volume=volumes.get(stem, 1.0),
                    mode=modes.get(stem, "auto"),  # type: ignore[arg-type]
                )
                for stem in named
            }
        )
        body = MixRequest(project_id=project_id, config=config, settings=settings or MixSettings())
        response = self._request("POST", "/mix", json=body.model_dump(mode="json", exclude_none=False))
        return MixAccepted.model_validate(response.json()).mix_id

    # --- downloads --------------------------------------------------------------------------------
    def download_mix(self, mix_id: str, dest: str | Path) -> Path:
        return self._download(f"/mix/{quote(mix_id, safe='')}/download", Path(dest))

    def download_stem(self, project_id: str, stem: str, dest: str | Path) -> Path:
        path = f"/projects/{quote(project_id, safe='')}/stems/{quote(stem, safe='')}"
        return self._download(path, Path(dest))

    def _download(self, path: str, dest: Path) -> Path:
        location = self._request("GET", path, follow_redirects=False).headers.get("location")
        if not location:
            raise ApiError(502, "no_redirect", f"{path} answered without a download location")
        tmp = dest.with_name(dest.name + ".part")
        try:
            with self.storage.stream("GET", location) as response:
                if response.is_error:
                    response.read()
                    message = f"download failed: {_s3_message(response)}"
                    raise ApiError(response.status_code, "storage", message)
                with tmp.open("wb") as out:
                    for chunk in response.iter_bytes(1 << 20):
                        out.write(chunk)
        except httpx.HTTPError as exc:
            tmp.unlink(missing_ok=True)
            raise ApiError(0, "network", f"download failed: {exc}") from None
        tmp.replace(dest)
        return dest

    # --- WebSocket --------------------------------------------------------------------------------
    def websocket_url(self, kind: Kind, object_id: str) -> str:
        """The local stack's /ws/{kind}/{id}, or the API Gateway form when ws_url is set."""
        if self.ws_url:
            sep = "&" if "?" in self.ws_url else "?"
            return f"{self.ws_url}{sep}{urlencode({'token': self.token, f'{kind}_id': object_id})}"
        parts = urlsplit(self.server)
        scheme = "wss" if parts.scheme == "https" else "ws"
        query = urlencode({"token": self.token})
        return f"{scheme}://{parts.netloc}/ws/{kind}/{quote(object_id, safe='')}?{query}"

    def events(self, kind: Kind, object_id: str, timeout_s: float = 3600.0) -> Iterator[Event]:
        """Every status event of one project, mix or sound (the current state first) until a terminal
        one. Raises TimeoutError when none comes within timeout_s."""
        from websockets.exceptions import ConnectionClosed, InvalidStatus
        from websockets.sync.client import connect

        deadline = time.monotonic() + timeout_s
        try:
            with connect(self.websocket_url(kind, object_id), open_timeout=30) as ws:
                if self.ws_url:  # API Gateway cannot post during $connect: ask for the current state
                    ws.send(json.dumps({"action": "sync"}))
                while True:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise TimeoutError(f"{kind} {object_id}: no terminal status within {timeout_s:.0f} s")
                    try:
                        raw = ws.recv(timeout=remaining)
                    except TimeoutError:
                        raise TimeoutError(
                            f"{kind} {object_id}: no terminal status within {timeout_s:.0f} s"
                        ) from None
                    event = Event.parse(json.loads(raw))
                    if event.id != object_id:
                        continue
                    yield event
                    if event.terminal:
                        return
        except InvalidStatus as exc:
            response = exc.response
            try:
                message = json.loads(response.body or b"{}")["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = f"WebSocket refused ({response.status_code})"
            raise ApiError(response.status_code, "websocket", message) from None
        except ConnectionClosed as exc:
            raise ApiError(0, "websocket", f"the WebSocket closed before a final status ({exc})") from None
        except OSError as exc:
            raise ApiError(0, "network", f"cannot open the WebSocket: {exc}") from None

    def wait(
        self,
        kind: Kind,
        object_id: str,
        on_event: Callable[[Event], None] | None = None,
        timeout_s: float = 3600.0,
    ) -> Event:
        """Follow until a terminal status; returns the success event, raises ApiError on `failed`."""
        last: Event | None = None
        for event in self.events(kind, object_id, timeout_s):
            last = event
            if on_event is not None:
                on_event(event)
        assert last is not None  # events() only returns after a terminal event
        if last.status != SUCCESS[kind]:
            raise ApiError(422, "failed", f"{kind} {object_id} failed: {last.detail or 'no reason given'}")
        return last


def _error_of(response: httpx.Response) -> ApiError:
    try:
        error = response.json()["error"]
        return ApiError(response.status_code, str(error["code"]), str(error["message"]))
    except (ValueError, KeyError, TypeError):
        return ApiError(response.status_code, f"http_{response.status_code}", response.reason_phrase)


def _s3_message(response: httpx.Response) -> str:
    text = response.text
    start, end = text.find("<Message>"), text.find("</Message>")
    if 0 <= start < end:
        return text[start + len("<Message>") : end]
    return f"{response.status_code} {response.reason_phrase}"
