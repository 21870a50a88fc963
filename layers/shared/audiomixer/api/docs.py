"""Interactive API docs served by the API itself: Swagger UI at ``/docs`` and ReDoc at ``/redoc``.

Their scripts, styles and icon come from the pinned ``fastapi-offline`` package (Swagger UI and ReDoc's
standalone bundle), served under ``/docs-assets``: the pages work offline, on a laptop running
``audiomixer dev`` without internet, and behind a content-security policy that allows only this origin.
FastAPI's own pages load them from a CDN (and ReDoc's fonts from Google).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from audiomixer.api import errors

ASSETS_DIR = Path(fastapi_offline.__file__).resolve().parent / "static"
ASSETS_URL = "/docs-assets"
DOCS_URL = "/docs"
REDOC_URL = "/redoc"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"


def install(app: FastAPI) -> None:
    """Serve the assets and both pages, and complete the schema they show. Create the app with
    ``docs_url=None, redoc_url=None``."""
    document(app)
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS_DIR), name="docs-assets")

    def base(request: Request) -> str:
        # Behind API Gateway with a stage, or a proxy that mounts the app under a prefix.
        return str(request.scope.get("root_path") or "").rstrip("/")

    @app.get(DOCS_URL, include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = base(request)
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=f"{root}{OAUTH2_REDIRECT_URL}",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            swagger_ui_parameters={"persistAuthorization": True, "displayRequestDuration": True},
        )

    @app.get(OAUTH2_REDIRECT_URL, include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(REDOC_URL, include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        root = base(request)
        return get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )


# --------------------------------------------------------------------------------------------------
# What the schema says about each operation and field
# --------------------------------------------------------------------------------------------------

_ID = "3f2b8c1d9e4a4b7c8d6e5f4a3b2c1d0e"
_AT = "2026-11-30T10:00:00Z"
_FORMATS = (
    "Any audio FFmpeg reads: WAV, AIFF, FLAC, MP3, M4A (AAC or ALAC), Ogg (Vorbis or Opus), WebM/Opus, WMA. "
    "A file that is not audio, cut short or damaged ends `failed` with the reason."
)
_PROJECT = {
    "project_id": _ID,
    "name": "My song",
    "status": "separating",
    "stage": "separate",
    "progress": 42,
    "source_kind": "song",
    "error": None,
    "created_at": _AT,
    "updated_at": _AT,
}
_SOUND = {
    "sound_id": _ID,
    "name": "kick-808",
    "status": "ready",
    "stage": "ready",
    "error": None,
    "duration_s": 0.42,
    "created_at": _AT,
    "updated_at": _AT,
}
_MIX = {
    "mix_id": _ID,
    "project_id": _ID,
    "status": "completed",
    "progress": 100,
    "error": None,
    "output_format": "wav",
    "created_at": _AT,
    "updated_at": _AT,
    "download_url": f"/api/v1/mix/{_ID}/download",
}
_STEMS = {"drums": True, "bass": True, "vocals": False, "other": False}

# (method, path) -> (description, example of the success response body or None, example request).
OPERATIONS: dict[tuple[str, str], tuple[str, Any]] = {
    ("get", "/health"): ("Liveness check; no authentication.", {"status": "ok"}),
    ("post", "/api/v1/upload/base-track"): (
        "Upload a song as a multipart body (`file`, optional `project_name`) up to the multipart limit "
        f"(4 MB); larger files go through `POST /api/v1/uploads`. {_FORMATS} The project is created "
        "`queued`; follow it with `GET /api/v1/projects/{id}/status` or the WebSocket.\n\n"
        "`curl -H 'Authorization: Bearer KEY' -F file=@song.m4a -F project_name='My song' "
        "$API/api/v1/upload/base-track`",
        {"project_id": _ID, "status": "queued", "message": "Upload received; separation will start shortly"},
    ),
    ("post", "/api/v1/upload/stems"): (
        "Bring your own stems (any 1 to 4 of the fields `drums`, `bass`, `vocals`, `other`): separation is "
        f"skipped and the project goes straight to analysis. {_FORMATS} An identical upload by the same "
        "tenant reuses the earlier stems.",
        {"project_id": _ID, "status": "queued", "message": "Stems received; analysis will start shortly"},
    ),
    ("post", "/api/v1/upload/style-sound"): (
        f"Add one or more short sounds (field `files`, repeated) to your library. {_FORMATS} Each sound is "
        "analysed into a grain table and becomes `ready` for mixes.",
        {
            "sounds": [{"sound_id": _ID, "name": "kick-808", "status": "queued"}],
            "count": 1,
            "message": "1 sound received; analysis will start shortly",
        },
    ),
    ("post", "/api/v1/uploads"): (
        "Start an upload of any size up to the upload limit: answers a presigned S3 POST form bound to one "
        "key, content type and size. POST the form's fields, then the file as `file`, straight to `url`; "
        "the stored object starts ingest. The new project or sound is `queued` until then. With kind "
        "`stems` and `stems` (stem -> size), one form per stem comes back in `stem_uploads` (each stem may "
        "be as large as the upload limit); the project is analysed once every announced stem arrived.",
        {
            "id": _ID,
            "kind": "base-track",
            "upload": {"url": "https://bucket.s3.amazonaws.com/", "fields": {"key": "uploads/…"}},
            "stem_uploads": None,
            "expires_in": 900,
            "max_bytes": 41_943_040,
        },
    ),
    ("get", "/api/v1/projects"): (
        "Your projects, newest first, `limit` per page; pass `next_cursor` back as `cursor` for the next.",
        {"items": [_PROJECT], "next_cursor": None},
    ),
    ("get", "/api/v1/projects/{project_id}"): (
        "One project with its stems, a download link per ready stem, duration, size and analysis summary. "
        "Someone else's id answers 404.",
        {**_PROJECT, "stems": _STEMS, "stem_urls": {}, "duration_s": 183.4, "size_bytes": 31_457_280},
    ),
    ("delete", "/api/v1/projects/{project_id}"): (
        "Delete a project with its stems, analysis and raw upload; a running separation is stopped.\n\n"
        "`curl -X DELETE -H 'Authorization: Bearer KEY' $API/api/v1/projects/ID` → 204",
        None,
    ),
    ("get", "/api/v1/projects/{project_id}/status"): (
        "Status as the seed shows it: `queued → separating → analysing → ready`, or `failed` with `error`; "
        "`progress` 0-100 only rises; `stems` says which stems are ready.",
        {
            "project_id": _ID,
            "status": "analysing",
            "progress": 80,
            "stems": _STEMS,
            "stage": "analyse",
            "error": None,
            "message": "Analysing stems",
        },
    ),
    ("get", "/api/v1/projects/{project_id}/stems/{stem}"): (
        "Download one ready stem as 24-bit FLAC at 44.1 kHz: answers 307 to a short-lived presigned URL.\n\n"
        "`curl -L -H 'Authorization: Bearer KEY' $API/api/v1/projects/ID/stems/drums -o drums.flac`",
        None,
    ),
    ("get", "/api/v1/library"): (
        "Your style sounds, newest first, `limit` per page; pass `next_cursor` back as `cursor`.",
        {"items": [_SOUND], "next_cursor": None},
    ),
    ("get", "/api/v1/library/{sound_id}"): (
        "One style sound with its size and the summary of its grain table.",
        {**_SOUND, "size_bytes": 74_088, "analysis": {"grains": 12}},
    ),
    ("delete", "/api/v1/library/{sound_id}"): (
        "Delete a style sound with its audio and analysis.\n\n"
        "`curl -X DELETE -H 'Authorization: Bearer KEY' $API/api/v1/library/ID` → 204",
        None,
    ),
    ("post", "/api/v1/mix"): (
        "Queue a render of a `ready` project: each stem in `config` may be re-rendered from one of your "
        "style sounds (`style_sound_id`), kept as it is, or disabled; a stem left out is mixed unchanged at "
        "volume 1.0. Then the mix is true-peak limited and written as `output_format`.",
        {"mix_id": _ID, "status": "queued"},
    ),
    ("get", "/api/v1/mix/{mix_id}"): (
        "A mix's status (`queued → rendering → completed`, or `failed` with `error`) and, once completed, "
        "its download link.",
        _MIX,
    ),
    ("get", "/api/v1/mix/{mix_id}/download"): (
        "Download a completed mix: answers 307 to a short-lived presigned URL.\n\n"
        "`curl -L -H 'Authorization: Bearer KEY' $API/api/v1/mix/ID/download -o mix.wav`",
        None,
    ),
    ("get", "/api/v1/mixes"): (
        "Your mixes, newest first, `limit` per page; pass `next_cursor` back as `cursor`.",
        {"items": [_MIX], "next_cursor": None},
    ),
}

# What each field means, by "Model.field" where a name means different things, else by field name.
FIELDS: dict[str, str] = {
    "project_id": "the project's id (32 hex characters)",
    "sound_id": "the style sound's id (32 hex characters)",
    "mix_id": "the mix's id (32 hex characters)",
    "name": "display name (the given name, else the file's base name)",
    "project_name": "display name of the new project (default: the file's base name)",
    "status": "where the job is; `failed` carries `error`",
    "stage": "the pipeline stage that last reported (`upload`, `ingest`, `separate`, `analyse`, `ready`, …)",
    "progress": "0-100; only rises",
    "error": "why it failed, in words a person can act on; null unless `failed`",
    "message": "a short human-readable note",
    "source_kind": "`song` (separated by Demucs) or `stems` (uploaded by you)",
    "created_at": "when it was created (UTC)",
    "updated_at": "when it last changed (UTC)",
    "duration_s": "length in seconds, once ingested",
    "size_bytes": "bytes stored for it",
    "analysis": "summary of the analysis, once analysed; null before",
    "items": "this page's entries",
    "next_cursor": "pass as `cursor` for the next page; null on the last page",
    "kind": "`base-track` (a song), `style-sound` (a library sound) or `stems` (your own stems)",
    "upload": "the presigned form: POST `fields` and then `file` to `url`",
    "fields": "form fields to send unchanged, before the file",
    "sounds": "one entry per accepted file",
    "count": "how many sounds were accepted",
    "output_format": "file format of the mix: wav (16-bit), flac (24-bit) or mp3 (320 kbit/s)",
    "project_id@MixRequest": "the `ready` project to mix",
    "config": "per stem: enable, style sound, volume, mode; a stem left out is mixed unchanged",
    "settings": "render settings shared by every re-rendered stem",
    "enabled": "false leaves the stem out of the mix",
    "volume": "gain applied to the stem, 0-2 (1: unchanged)",
    "grain_duration_ms": "length of each grain cut from the style sound, 10-1000 ms",
    "use_pitch_mapping": "transpose tonal grains to follow the stem's pitch",
    "use_envelope": "shape the re-rendered stem with the original stem's loudness envelope",
    "drums@StemFlags": "true once the drums stem is ready",
    "bass@StemFlags": "true once the bass stem is ready",
    "vocals@StemFlags": "true once the vocals stem is ready",
    "other@StemFlags": "true once the other stem (everything else) is ready",
    "drums@MixConfig": "settings for the drums stem",
    "bass@MixConfig": "settings for the bass stem",
    "vocals@MixConfig": "settings for the vocals stem",
    "other@MixConfig": "settings for the other stem (everything that is not drums, bass or vocals)",
    "drums": "the drums stem as an audio file",
    "bass": "the bass stem as an audio file",
    "vocals": "the vocals stem as an audio file",
    "other": "the rest of the song (everything that is not drums, bass or vocals) as an audio file",
    "error@ErrorResponse": "`code` for programs, `message` for people",
    "status@Health": "`ok` while the API answers",
    "stems": "stem → true once that stem is ready",
}
PARAMETERS: dict[str, str] = {
    "limit": "entries per page",
    "cursor": "`next_cursor` of the previous page",
    "project_id": "the project's id",
    "sound_id": "the style sound's id",
    "mix_id": "the mix's id",
    "stem": "which stem",
}


def document(app: FastAPI) -> None:
    """Build the OpenAPI document once, then give every operation its description and example and every
    field and parameter its description (where the route or model did not say more)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            _enrich(FastAPI.openapi(app))
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]


def _enrich(schema: dict[str, Any]) -> None:
    components = schema.setdefault("components", {})
    components["schemas"] = dict(
        sorted({**components.get("schemas", {}), **errors.component_schemas()}.items())
    )
    for path, item in schema.get("paths", {}).items():
        for method, op in item.items():
            description, example = OPERATIONS.get((method, path), ("", None))
            if description and not op.get("description"):
                op["description"] = description
            for code, response in op.get("responses", {}).items():
                content = response.get("content", {}).get("application/json")
                if example is not None and code.startswith("2") and content is not None:
                    content.setdefault("example", example)
            for param in op.get("parameters", []):
                param.setdefault("description", PARAMETERS.get(param["name"], ""))
    for model, body in schema.get("components", {}).get("schemas", {}).items():
        for field, prop in body.get("properties", {}).items():
            if not prop.get("description"):
                plain = model.split("_api_")[0].replace("Body_", "")
                text = FIELDS.get(f"{field}@{model}") or FIELDS.get(f"{field}@{plain}") or FIELDS.get(field)
                if text:
                    prop["description"] = text
