"""The FastAPI application: the seed's REST contract under /api/v1, served by Mangum on Lambda and by
uvicorn locally. It must not import numpy/librosa/torch: the API's Lambda cold-starts without them."""

from __future__ import annotations

from pathlib import Path

from aws_lambda_powertools import Logger
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from audiomixer.api import docs, errors
from audiomixer.api.body import read_body, replaying
from audiomixer.api.deps import RateLimiter
from audiomixer.api.routes import library, mixes, projects, tickets, uploads
from audiomixer.api.schemas import Health
from audiomixer.settings import get_settings
from audiomixer.store.usage import SharedRateLimiter

logger = Logger(service="audiomixer", child=True)

API_PREFIX = "/api/v1"
CONSOLE_PREFIX = "/console"
MULTIPART_PREFIX = f"{API_PREFIX}/upload/"
# JSON bodies are small (ids and settings); anything bigger is a mistake or an attack.
JSON_BODY_LIMIT = 64 * 1024

DESCRIPTION = """Split songs into stems (drums, bass, vocals, other), re-render stems with your own style
sounds by granular synthesis, and mix.

Authenticate every `/api/v1` call with `Authorization: Bearer <API key>`. Errors are
`{"error": {"code", "message"}}`. Lists take `limit` and an opaque `cursor`. POSTs honour `Idempotency-Key`.
Upload files up to the multipart limit through `/api/v1/upload/*`; larger ones with `POST /api/v1/uploads`.
"""


class BodyLimitMiddleware:
    """Refuse oversized bodies before anything parses them: multipart upload routes get the direct-upload
    limit (with a pointer to presigned uploads), every other route a small JSON limit."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        multipart = scope["path"].startswith(MULTIPART_PREFIX)
        limit = get_settings().multipart_limit_bytes if multipart else JSON_BODY_LIMIT
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                await self._reply(scope, receive, send, 400, "bad_request", "invalid Content-Length")
                return
            if size > limit:
                await self._too_large(scope, receive, send, limit, multipart)
                return
            await self.app(scope, receive, send)
            return
        # Chunked body: buffer up to the limit, then replay it.
        body, over_limit = await read_body(receive, limit)
        if over_limit:
            await self._too_large(scope, receive, send, limit, multipart)
            return
        await self.app(scope, replaying(body, receive), send)

    async def _too_large(
        self, scope: Scope, receive: Receive, send: Send, limit: int, multipart: bool
    ) -> None:
        message = f"request body is over the {limit}-byte limit"
        if multipart:
            message += "; upload large files with POST /api/v1/uploads (a presigned S3 upload)"
        await self._reply(scope, receive, send, 413, "payload_too_large", message)

    async def _reply(
        self, scope: Scope, receive: Receive, send: Send, status: int, code: str, message: str
    ) -> None:
        response = errors.envelope(status, code, message)
        response.headers["Connection"] = "close"  # the unread body must not be taken for the next request
        await response(scope, receive, send)


def console_dir(configured: str | None) -> Path | None:
    """Where the web console's files are: the configured folder (AUDIOMIXER_WEB_DIR; /opt/console in the
    API's Lambda layer), else the repository's web/console (running from a checkout), else none."""
    repository_copy = Path(__file__).resolve().parents[4] / "web" / "console"
    for folder in (Path(configured) if configured else None, repository_copy):
        if folder is not None and (folder / "index.html").is_file():
            return folder
    if configured:
        logger.warning("no web console: the folder has no index.html", extra={"web_dir": configured})
    return None


def mount_console(app: FastAPI, folder: Path | None) -> None:
    """Serve the console (static files that speak only the public API) at `/`, its assets under
    /console/. The API function serves it, so the console and the API share one origin: no CORS for the
    API, one deployment, and the console works wherever the API does."""
    if folder is None:
        return
    index = folder / "index.html"

    @app.get("/", include_in_schema=False)
    def console_index() -> FileResponse:
        return FileResponse(index, headers={"Cache-Control": "no-cache"})

    app.mount(CONSOLE_PREFIX, StaticFiles(directory=folder), name="console")


def create_app(limiter: RateLimiter | None = None) -> FastAPI:
    """Build the app. `limiter` replaces the default per-tenant request limit, which is counted in
    DynamoDB and so shared by every API container (tests use an in-memory one)."""
    settings = get_settings()
    app = FastAPI(
        title="Audio Mixer API",
        version="1.0.0",
        description=DESCRIPTION,
        docs_url=None,  # served by audiomixer.api.docs from local assets, not a CDN
        redoc_url=None,
        responses=errors.SERVER_ERROR,
    )
    app.state.limiter = (
        limiter
        if limiter is not None
        else SharedRateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst)
    )
    errors.install(app)
    docs.install(app)

    @app.get("/health", response_model=Health, tags=["health"])
    def health() -> Health:
        return Health()

    # The routers' routes join the app's own list instead of `include_router`: FastAPI (0.137 on) builds
    # an included router's routes again (dependencies, pydantic adapters) for the first request that
    # reaches it, after the router built them at import, so a cold start paid twice (~10 ms) and every
    # request walked the routers' trees.
    for module in (uploads, projects, library, mixes, tickets):
        app.router.routes.extend(module.router.routes)
    mount_console(app, console_dir(settings.web_dir))

    app.add_middleware(BodyLimitMiddleware)
    # Outermost, so even a 413 or 401 carries CORS headers the browser can read.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(settings.cors_allow_origins),
        allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
        expose_headers=["Retry-After", "Location", "Idempotent-Replayed"],
        max_age=600,
    )
    return app


app = create_app()

__all__ = ["API_PREFIX", "CONSOLE_PREFIX", "app", "create_app"]
