"""Mixes: validate a render request completely, then queue it; status and download."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse
from pynamodb.exceptions import DoesNotExist

from audiomixer import aws
from audiomixer.api import deps, errors, idempotency, storage
from audiomixer.api.routes.library import load_sound
from audiomixer.api.routes.projects import load_project
from audiomixer.api.schemas import MixAccepted, MixList, MixRequest, MixStatusResponse
from audiomixer.auth import Principal
from audiomixer.settings import get_settings
from audiomixer.stem_sets import project_stems
from audiomixer.store import blobs, keys
from audiomixer.store.models import Mix, MixStatus, ProjectStatus, SoundStatus

router = APIRouter(prefix="/api/v1", tags=["mixes"], responses=errors.API_RESPONSES)


def load_mix(tenant_id: str, mix_id: str) -> Mix:
    if not keys.is_id(mix_id):
        raise errors.not_found("mix")
    try:
        return Mix.get(tenant_id, mix_id)
    except DoesNotExist:
        raise errors.not_found("mix") from None


def download_path(mix_id: str) -> str:
    return f"/api/v1/mix/{mix_id}/download"


def describe(mix: Mix) -> MixStatusResponse:
    completed = mix.status == MixStatus.COMPLETED
    return MixStatusResponse(
        mix_id=mix.mix_id,
        project_id=mix.project_id,
        status=mix.status,  # type: ignore[arg-type]
        progress=100 if completed else max(0, min(100, int(mix.progress or 0))),
        error=mix.failure_reason if mix.status == MixStatus.FAILED else None,
        download_url=download_path(mix.mix_id) if completed else None,
        output_format=mix.output_format,  # type: ignore[arg-type]
        created_at=mix.created_at,
        updated_at=mix.updated_at,
    )


def _validate(principal: Principal, body: MixRequest) -> dict[str, dict[str, Any]]:
    """Everything a render needs must exist, be the caller's and be ready before anything is queued."""
    project = load_project(principal, body.project_id)
    if project.status == "failed":
        # Waiting never helps a failed project: say why it failed and what to do instead.
        reason = project.failure_reason or "no reason was recorded"
        raise errors.conflict(
            f"project {project.project_id} failed ({reason}); it cannot be mixed: upload the song again "
            "as a new project (and DELETE this one to free its space)"
        )
    # The stem set is known from the project's options before it is ready: a wrong name is a 422 at once.
    stems = project_stems(project, get_settings().demucs_model)
    unknown = [stem for stem in body.config.root if stem not in stems]
    if unknown:
        raise errors.validation_error(
            f"config names {', '.join(unknown)}, which this project does not have; "
            f"its stems are {', '.join(stems)}"
        )
    if project.status != ProjectStatus.READY:
        raise errors.conflict(f"project is {project.status}, not ready; wait until its status is ready")
    config = body.config.resolved(stems)
    present = [stem for stem, stored in project.stems.as_dict().items() if stored]
    if not any(config.get(stem, {}).get("enabled", True) for stem in present):
        raise errors.validation_error("every stem is disabled: enable at least one stem")
    for stem, stem_config in config.items():
        sound_id = stem_config["style_sound_id"]
        if sound_id is None:
            continue
        try:
            sound = load_sound(principal.tenant_id, sound_id)
        except errors.ApiError:
            raise errors.not_found(f"style sound {sound_id} (config.{stem}.style_sound_id)") from None
        if sound.status != SoundStatus.READY:
            raise errors.conflict(f"style sound {sound_id} is {sound.status}, not ready (config.{stem})")
    return config


@router.post(
    "/mix",
    status_code=202,
    response_model=MixAccepted,
    summary="Render a mix: re-render chosen stems from style sounds, then mix",
    responses=errors.responses(403, 404, 409, 413),
)
def create_mix(
    request: Request,
    body: MixRequest,
    principal: Principal = Depends(deps.principal),
    idempotency_key: str | None = idempotency.IdempotencyKey,
) -> JSONResponse:
    def work() -> tuple[int, dict[str, Any]]:
        # The stage messages' models are only needed here: not imported at the API's cold start.
        from audiomixer.messages import RenderMessage, send

        config = _validate(principal, body)
        mix_id = keys.new_id()
        deps.charge_storage(principal.tenant_id)  # a mix reserves nothing; a tenant over quota gets none
        deps.take_job_slot(principal.tenant_id, "mix", mix_id)
        mix = Mix(
            principal.tenant_id,
            mix_id,
            project_id=body.project_id,
            config=config,
            settings=body.settings.model_dump(),
            output_format=body.settings.output_format,
            stage="queued",
        )
        mix.save(condition=Mix.mix_id.does_not_exist())
        try:
            send(
                aws.client("sqs"),
                get_settings().render_queue_url,
                RenderMessage(tenant_id=principal.tenant_id, mix_id=mix.mix_id),
            )
        except Exception:
            mix.delete(add_version_condition=False)  # nothing will ever render it
            deps.release_job_slots(principal.tenant_id, "mix", mix.mix_id)
            raise
        return 202, MixAccepted(mix_id=mix.mix_id).model_dump()

    fp = idempotency.fingerprint(body.model_dump_json())
    return idempotency.run(request, principal.tenant_id, idempotency_key, fp, work)


@router.get("/mix/{mix_id}", response_model=MixStatusResponse, responses=errors.responses(404))
def get_mix(mix_id: str, principal: Principal = Depends(deps.principal)) -> MixStatusResponse:
    return describe(load_mix(principal.tenant_id, mix_id))


@router.get(
    "/mix/{mix_id}/download",
    status_code=307,
    response_class=RedirectResponse,
    summary="Download a completed mix (307 to a short-lived presigned URL; use curl -L)",
    responses={307: {"description": "Redirect to a presigned S3 URL"}, **errors.responses(404, 409)},
)
def download_mix(mix_id: str, principal: Principal = Depends(deps.principal)) -> RedirectResponse:
    mix = load_mix(principal.tenant_id, mix_id)
    if mix.status != MixStatus.COMPLETED:
        raise errors.conflict(f"mix is {mix.status}, not completed")
    key = mix.output_key or keys.mix_output(principal.tenant_id, mix_id, mix.output_format)
    settings = get_settings()
    url = blobs.presigned_get(
        aws.client("s3"),
        settings.bucket,
        key,
        f"mix-{mix_id}.{mix.output_format}",
        settings.download_expiry_s,
    )
    return RedirectResponse(url, status_code=307)


@router.get("/mixes", response_model=MixList, summary="List your mixes, newest first")
def list_mixes(
    limit: storage.PageLimit = storage.PAGE_LIMIT_DEFAULT,
    cursor: storage.PageCursor = None,
    principal: Principal = Depends(deps.principal),
) -> MixList:
    rows, next_cursor = storage.page(Mix, principal.tenant_id, "mix_id", limit, cursor)
    return MixList(items=[describe(m) for m in rows], next_cursor=next_cursor)
