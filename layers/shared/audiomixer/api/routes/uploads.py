"""Uploads: small files through the API (multipart), large ones straight to S3 with a presigned POST.
The S3 ObjectCreated event on `uploads/` starts ingest, so nothing here enqueues."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile as ReceivedFile

from audiomixer import aws
from audiomixer.api import deps, errors, idempotency, storage
from audiomixer.api.schemas import (
    MODEL_DESCRIPTION,
    NAME_MAX,
    TWO_STEMS_DESCRIPTION,
    PresignedPost,
    PresignRequest,
    PresignResponse,
    SoundAccepted,
    StyleSoundsAccepted,
    UploadAccepted,
)
from audiomixer.auth import Principal
from audiomixer.settings import STEMS, get_settings
from audiomixer.stem_sets import SeparationOptionError, check_options
from audiomixer.store import blobs, keys, usage
from audiomixer.store.models import Project, Sound, SoundStatus

router = APIRouter(prefix="/api/v1", tags=["uploads"], responses=errors.API_RESPONSES)

MAX_STYLE_SOUNDS_PER_REQUEST = 20
ABANDONED_UPLOAD_GRACE_S = 24 * 60 * 60


def _read(upload: UploadFile, field: str) -> bytes:
    # Sync routes run in the threadpool, so reading the spooled file and calling AWS never blocks the loop.
    upload.file.seek(0)
    data = upload.file.read()
    if not data:
        raise errors.bad_request(f"{field}: the file is empty")
    return data


def _too_large_for_api(size: int) -> None:
    limit = get_settings().multipart_limit_bytes
    if size > limit:
        raise errors.payload_too_large(
            f"file is {size} bytes, over the {limit}-byte limit of direct uploads; "
            "use POST /api/v1/uploads for a presigned S3 upload"
        )


def _separation_options(model: str | None, two_stems: str | None) -> None:
    """A 422 naming the choices for a model or two-stem mode the separation job cannot run."""
    settings = get_settings()
    try:
        check_options(
            model,
            two_stems,
            repo=settings.demucs_repo,
            default=settings.demucs_model,
            served=settings.served_models,
        )
    except SeparationOptionError as exc:
        raise errors.validation_error(str(exc)) from None


def _create_project(
    principal: Principal,
    project_id: str,
    name: str,
    source_kind: str,
    size: int,
    stems: dict[str, bool],
    expires_at: int | None = None,
    model: str | None = None,
    two_stems: str | None = None,
) -> Project:
    project = Project(
        principal.tenant_id,
        project_id,
        name=name,
        stage="upload",
        source_kind=source_kind,
        stems=stems,
        size_bytes=size,
        quota_bytes=size,
        expires_at=expires_at,
        separation_model=model,
        two_stems=two_stems,
    )
    project.save(condition=Project.project_id.does_not_exist())
    return project


def _put_or_forget(item: Project | Sound, uploads: list[tuple[str, bytes, str | None]]) -> None:
    """Write the raw uploads; if S3 refuses, drop the row so nothing waits for a file that never came."""
    s3, bucket = aws.client("s3"), get_settings().bucket
    try:
        for key, body, content_type in uploads:
            blobs.write(s3, bucket, key, body, content_type or "application/octet-stream")
    except Exception:
        for key, _, _ in uploads:
            blobs.delete(s3, bucket, key)
        item.delete()
        raise


@router.post(
    "/upload/base-track",
    status_code=202,
    response_model=UploadAccepted,
    summary="Upload a song (small files; use POST /uploads above the multipart limit)",
    responses=errors.responses(403, 413),
)
def upload_base_track(
    request: Request,
    file: UploadFile = File(
        description="the song: any audio FFmpeg reads (wav, flac, mp3, m4a, ogg, opus, webm, wma, aiff)"
    ),
    project_name: str | None = Form(default=None, max_length=NAME_MAX),
    model: str | None = Form(default=None, max_length=64, description=MODEL_DESCRIPTION),
    two_stems: str | None = Form(default=None, max_length=32, description=TWO_STEMS_DESCRIPTION),
    principal: Principal = Depends(deps.principal),
    idempotency_key: str | None = idempotency.IdempotencyKey,
) -> JSONResponse:
    model, two_stems = model or None, two_stems or None  # an empty form field means the default
    _separation_options(model, two_stems)
    data = _read(file, "file")
    _too_large_for_api(len(data))
    name = storage.display_name(project_name, file.filename)

    def work() -> tuple[int, dict[str, Any]]:
        project_id = keys.new_id()
        with deps.admitted(principal.tenant_id, len(data), job=("project", project_id)):
            project = _create_project(
                principal, project_id, name, "song", len(data), {}, model=model, two_stems=two_stems
            )
            key = keys.upload(principal.tenant_id, "base-track", project.project_id)
            _put_or_forget(project, [(key, data, file.content_type)])
        body = UploadAccepted(
            project_id=project.project_id,
            message=f"Upload received ({len(data)} bytes); processing will start shortly",
        )
        return 202, body.model_dump()

    options = (model or "", two_stems or "") if model or two_stems else ()
    fp = idempotency.fingerprint(name, data, *options)
    return idempotency.run(request, principal.tenant_id, idempotency_key, fp, work)


@router.post(
    "/upload/stems",
    status_code=202,
    response_model=UploadAccepted,
    summary="Upload your own stems (1 to 4); separation is skipped",
    responses=errors.responses(403, 413),
)
def upload_stems(
    request: Request,
    drums: UploadFile | None = File(default=None),
    bass: UploadFile | None = File(default=None),
    vocals: UploadFile | None = File(default=None),
    other: UploadFile | None = File(default=None),
    project_name: str | None = Form(default=None, max_length=NAME_MAX),
    principal: Principal = Depends(deps.principal),
    idempotency_key: str | None = idempotency.IdempotencyKey,
) -> JSONResponse:
    given = {stem: f for stem, f in zip(STEMS, (drums, bass, vocals, other), strict=True) if f is not None}
    # A form field sent as plain text (not a file) arrives as a str; it is not a stem file.
    given = {stem: f for stem, f in given.items() if isinstance(f, ReceivedFile)}
    if not given:
        raise errors.bad_request(f"send at least one stem file as one of the fields {', '.join(STEMS)}")
    contents = {stem: _read(f, stem) for stem, f in given.items()}
    total = sum(len(d) for d in contents.values())
    _too_large_for_api(total)
    first = next(iter(given.values()))
    name = storage.display_name(project_name, first.filename)

    def work() -> tuple[int, dict[str, Any]]:
        project_id = keys.new_id()
        with deps.admitted(principal.tenant_id, total, job=("project", project_id)):
            project = _create_project(
                principal, project_id, name, "stems", total, dict.fromkeys(contents, False)
            )
            uploads = [
                (
                    keys.upload(principal.tenant_id, "stem", project.project_id, stem),
                    data,
                    given[stem].content_type,
                )
                for stem, data in contents.items()
            ]
            _put_or_forget(project, uploads)
        body = UploadAccepted(
            project_id=project.project_id,
            message=f"Stems received ({', '.join(contents)}); analysis will start shortly",
        )
        return 202, body.model_dump()

    fp = idempotency.fingerprint(name, *[p for stem, d in contents.items() for p in (stem, d)])
    return idempotency.run(request, principal.tenant_id, idempotency_key, fp, work)


@router.post(
    "/upload/style-sound",
    status_code=202,
    response_model=StyleSoundsAccepted,
    summary="Add one or more style sounds to your library",
    responses=errors.responses(403, 413),
)
def upload_style_sounds(
    request: Request,
    files: list[UploadFile] = File(description="one or more short sounds, in any audio format FFmpeg reads"),
    principal: Principal = Depends(deps.principal),
    idempotency_key: str | None = idempotency.IdempotencyKey,
) -> JSONResponse:
    files = [f for f in files if isinstance(f, ReceivedFile)]
    if not files:
        raise errors.bad_request("send at least one file in the `files` field")
    if len(files) > MAX_STYLE_SOUNDS_PER_REQUEST:
        raise errors.bad_request(f"at most {MAX_STYLE_SOUNDS_PER_REQUEST} files per request")
    contents = [(_read(f, f"files[{i}]"), f) for i, f in enumerate(files)]
    total = sum(len(d) for d, _ in contents)
    _too_large_for_api(total)

    def work() -> tuple[int, dict[str, Any]]:
        deps.charge_storage(principal.tenant_id, total)
        accepted = []
        for n, (data, f) in enumerate(contents):
            try:
                sound = Sound(
                    principal.tenant_id,
                    keys.new_id(),
                    name=storage.display_name(None, f.filename),
                    status="queued",
                    stage="upload",
                    size_bytes=len(data),
                    quota_bytes=len(data),
                )
                sound.save(condition=Sound.sound_id.does_not_exist())
                _put_or_forget(
                    sound,
                    [(keys.upload(principal.tenant_id, "style-sound", sound.sound_id), data, f.content_type)],
                )
            except BaseException:
                # The sounds already stored keep their share; the rest is given back.
                usage.refund_bytes(principal.tenant_id, sum(len(d) for d, _ in contents[n:]))
                raise
            accepted.append(
                SoundAccepted(sound_id=sound.sound_id, name=sound.name, status=SoundStatus.QUEUED)
            )
        body = StyleSoundsAccepted(
            sounds=accepted,
            count=len(accepted),
            message=f"{len(accepted)} sound(s) received; analysis will start shortly",
        )
        return 202, body.model_dump()

    fp = idempotency.fingerprint(*[p for d, f in contents for p in (f.filename or "", d)])
    return idempotency.run(request, principal.tenant_id, idempotency_key, fp, work)


@router.post(
    "/uploads",
    status_code=201,
    response_model=PresignResponse,
    summary="Start a large upload: returns a presigned S3 POST form bound to one key, type and size",
    responses=errors.responses(403, 413),
)
def create_upload(
    request: Request,
    body: PresignRequest,
    principal: Principal = Depends(deps.principal),
    idempotency_key: str | None = idempotency.IdempotencyKey,
) -> JSONResponse:
    settings = get_settings()
    # The limit is per file: each stem of a stems upload is a file of its own.
    for what, size in (body.stems or {"size": body.size}).items():
        if size > settings.max_upload_bytes:
            raise errors.payload_too_large(
                f"{what} {size} is over the {settings.max_upload_bytes}-byte upload limit"
            )
    max_bytes = min(max((body.stems or {"": body.size}).values()), settings.max_upload_bytes)
    if body.kind != "base-track" and (body.model or body.two_stems):
        raise errors.validation_error("model and two_stems apply to a base-track upload only")
    _separation_options(body.model, body.two_stems)

    def work() -> tuple[int, dict[str, Any]]:
        tenant = principal.tenant_id
        # A form that is never used ends `failed` when it expires (it stops holding a job slot then), and
        # DynamoDB's TTL removes its row a day later.
        expires_at = int(time.time()) + settings.presign_expiry_s + ABANDONED_UPLOAD_GRACE_S
        object_id = keys.new_id()
        item: Project | Sound
        if body.kind == "stems":
            assert body.stems is not None  # the model checked it
            name = storage.display_name(body.project_name, body.filename)
            with deps.admitted(tenant, body.size, job=("project", object_id)):
                # The project waits (queued) until every announced stem has been ingested.
                item = _create_project(
                    principal,
                    object_id,
                    name,
                    "stems",
                    body.size,
                    dict.fromkeys(body.stems, False),
                    expires_at=expires_at,
                )
            s3 = aws.client("s3")
            forms = {
                stem: blobs.presigned_post(
                    s3,
                    settings.bucket,
                    keys.upload(tenant, "stem", item.project_id, stem),
                    body.content_type,
                    size,
                    settings.presign_expiry_s,
                )
                for stem, size in body.stems.items()
            }
            response = PresignResponse(
                id=item.project_id,
                kind=body.kind,
                upload=None,
                stem_uploads={
                    stem: PresignedPost(
                        url=post["url"], fields={k: str(v) for k, v in post["fields"].items()}
                    )
                    for stem, post in forms.items()
                },
                expires_in=settings.presign_expiry_s,
                max_bytes=max_bytes,
            )
            return 201, response.model_dump()
        job = ("project", object_id) if body.kind == "base-track" else None
        with deps.admitted(tenant, body.size, job=job):
            if body.kind == "base-track":
                item = _create_project(
                    principal,
                    object_id,
                    storage.display_name(body.project_name, body.filename),
                    "song",
                    body.size,
                    {},
                    expires_at=expires_at,
                    model=body.model,
                    two_stems=body.two_stems,
                )
            else:
                item = Sound(
                    tenant,
                    object_id,
                    name=storage.display_name(body.project_name, body.filename),
                    status="queued",
                    stage="upload",
                    size_bytes=body.size,
                    quota_bytes=body.size,
                    expires_at=expires_at,
                )
                item.save(condition=Sound.sound_id.does_not_exist())
        post = blobs.presigned_post(
            aws.client("s3"),
            settings.bucket,
            keys.upload(tenant, body.kind, object_id),
            body.content_type,
            max_bytes,
            settings.presign_expiry_s,
        )
        response = PresignResponse(
            id=object_id,
            kind=body.kind,
            upload=PresignedPost(url=post["url"], fields={k: str(v) for k, v in post["fields"].items()}),
            expires_in=settings.presign_expiry_s,
            max_bytes=max_bytes,
        )
        return 201, response.model_dump()

    fp = idempotency.fingerprint(body.model_dump_json())
    return idempotency.run(request, principal.tenant_id, idempotency_key, fp, work)
