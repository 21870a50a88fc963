"""Projects: list, details, status, stem downloads, delete."""

from __future__ import annotations

from aws_lambda_powertools import Logger
from fastapi import APIRouter, Depends, Path, Response
from fastapi.responses import RedirectResponse
from pynamodb.exceptions import DoesNotExist

from audiomixer import aws
from audiomixer.api import deps, errors, storage
from audiomixer.api.schemas import (
    ProjectDetail,
    ProjectList,
    ProjectStatusResponse,
    ProjectSummary,
)
from audiomixer.auth import Principal
from audiomixer.settings import STEMS, get_settings
from audiomixer.stem_sets import project_stems
from audiomixer.store import blobs, keys
from audiomixer.store.models import Mix, Project, ProjectStatus

logger = Logger(service="audiomixer", child=True)
router = APIRouter(prefix="/api/v1/projects", tags=["projects"], responses=errors.API_RESPONSES)

_MESSAGES: dict[str, str] = {
    ProjectStatus.QUEUED: "Waiting to be processed",
    ProjectStatus.SEPARATING: "Separating the song into stems",
    ProjectStatus.ANALYSING: "Analysing the stems",
    ProjectStatus.READY: "Ready: stems separated and analysed",
    ProjectStatus.FAILED: "Processing failed",
}


def load_project(principal: Principal, project_id: str) -> Project:
    """The caller's project; someone else's id or a malformed one is a 404, never a 403."""
    if not keys.is_id(project_id):
        raise errors.not_found("project")
    try:
        project = Project.get(principal.tenant_id, project_id)
    except DoesNotExist:
        raise errors.not_found("project") from None
    deps.expire_if_unused(project)
    return project


def stem_flags(project: Project) -> dict[str, bool]:
    """The project's own stems (the set its model gives) -> stored yet."""
    stored = project.stems.as_dict() if project.stems is not None else {}
    return {
        stem: bool(stored.get(stem, False)) for stem in project_stems(project, get_settings().demucs_model)
    }


def _progress(project: Project) -> int:
    return 100 if project.status == ProjectStatus.READY else max(0, min(100, int(project.progress or 0)))


def summary(project: Project) -> ProjectSummary:
    return ProjectSummary(
        project_id=project.project_id,
        name=project.name,
        status=project.status,  # type: ignore[arg-type]
        stage=project.stage,
        progress=_progress(project),
        source_kind=project.source_kind,  # type: ignore[arg-type]
        error=project.failure_reason if project.status == ProjectStatus.FAILED else None,
        created_at=project.created_at,
        updated_at=project.updated_at,
    )


def stem_url(project_id: str, stem: str) -> str:
    return f"/api/v1/projects/{project_id}/stems/{stem}"


@router.get("", response_model=ProjectList, summary="List your projects, newest first")
def list_projects(
    limit: storage.PageLimit = storage.PAGE_LIMIT_DEFAULT,
    cursor: storage.PageCursor = None,
    principal: Principal = Depends(deps.principal),
) -> ProjectList:
    rows, next_cursor = storage.page(Project, principal.tenant_id, "project_id", limit, cursor)
    return ProjectList(items=[summary(p) for p in rows], next_cursor=next_cursor)


@router.get("/{project_id}", response_model=ProjectDetail, responses=errors.responses(404))
def get_project(project_id: str, principal: Principal = Depends(deps.principal)) -> ProjectDetail:
    project = load_project(principal, project_id)
    flags = stem_flags(project)
    return ProjectDetail(
        **summary(project).model_dump(),
        stems=flags,
        stem_urls={stem: stem_url(project.project_id, stem) for stem, ready in flags.items() if ready},
        model=project.separation_model,
        two_stems=project.two_stems,
        duration_s=float(project.duration_s) if project.duration_s is not None else None,
        size_bytes=int(project.size_bytes or 0),
        analysis=project.analysis if isinstance(project.analysis, dict) else None,
    )


@router.get("/{project_id}/status", response_model=ProjectStatusResponse, responses=errors.responses(404))
def get_project_status(
    project_id: str, principal: Principal = Depends(deps.principal)
) -> ProjectStatusResponse:
    project = load_project(principal, project_id)
    error = project.failure_reason if project.status == ProjectStatus.FAILED else None
    message = _MESSAGES.get(project.status, project.status)
    if error:
        message = f"{message}: {error}"
    return ProjectStatusResponse(
        project_id=project.project_id,
        status=project.status,  # type: ignore[arg-type]
        progress=_progress(project),
        stems=stem_flags(project),
        stage=project.stage,
        error=error,
        message=message,
    )


@router.get(
    "/{project_id}/stems/{stem}",
    status_code=307,
    response_class=RedirectResponse,
    summary="Download one stem (307 to a short-lived presigned URL; use curl -L)",
    responses={307: {"description": "Redirect to a presigned S3 URL"}, **errors.responses(404)},
)
def download_stem(
    project_id: str,
    # Documented as an enum, checked below: an unknown stem is a 404 like any missing resource.
    stem: str = Path(description="which stem", json_schema_extra={"enum": list(STEMS)}),
    principal: Principal = Depends(deps.principal),
) -> RedirectResponse:
    project = load_project(principal, project_id)
    flags = stem_flags(project)
    if stem not in flags:
        raise errors.not_found(f"stem {stem!r} (this project's stems are {', '.join(flags)})")
    if not flags[stem]:
        raise errors.not_found(f"stem {stem!r} is not ready yet")
    settings = get_settings()
    url = blobs.presigned_get(
        aws.client("s3"),
        settings.bucket,
        keys.stem(principal.tenant_id, project_id, stem),
        f"{project_id}-{stem}.flac",
        settings.download_expiry_s,
    )
    return RedirectResponse(url, status_code=307)


@router.get(
    "/{project_id}/analysis/{stem}",
    status_code=307,
    response_class=RedirectResponse,
    summary="One stem's analysis as JSON: onsets (s), f0 (Hz) per frame, RMS envelope "
    "(307 to a short-lived presigned URL; use curl -L)",
    responses={307: {"description": "Redirect to a presigned S3 URL"}, **errors.responses(404, 409)},
)
def download_analysis(
    project_id: str,
    stem: str = Path(description="which stem", json_schema_extra={"enum": list(STEMS)}),
    principal: Principal = Depends(deps.principal),
) -> RedirectResponse:
    """The analysis of one stem of a ready project, as the render stage uses it: `onsets_s` (onset times
    in seconds) with their strengths, `f0_hz` and `voiced_prob` per frame of `hop_s` seconds, the RMS
    envelope, the silence map and the stem's kind (percussive or tonal). 409 until the project is ready.
    `curl -L -H 'Authorization: Bearer KEY' $API/api/v1/projects/ID/analysis/bass -o bass.json`"""
    project = load_project(principal, project_id)
    flags = stem_flags(project)
    if stem not in flags:
        raise errors.not_found(f"stem {stem!r} (this project's stems are {', '.join(flags)})")
    if project.status != "ready" or not flags[stem]:
        raise errors.conflict(f"project is {project.status}; the analysis of {stem!r} is not there yet")
    key = keys.stem_analysis(principal.tenant_id, project_id, stem)
    settings = get_settings()
    url = blobs.presigned_get(
        aws.client("s3"), settings.bucket, key, f"{project_id}-{stem}.json", settings.download_expiry_s
    )
    return RedirectResponse(url, status_code=307)


@router.delete(
    "/{project_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a project, its stems, analysis and raw uploads",
    responses=errors.responses(404),
)
def delete_project(project_id: str, principal: Principal = Depends(deps.principal)) -> Response:
    project = load_project(principal, project_id)
    tenant = principal.tenant_id
    # The row goes first: a stage that still holds a message then finds nothing and stops.
    deps.delete_and_refund(project)
    deps.release_job_slots(tenant, "project", project_id)
    if project.status == ProjectStatus.SEPARATING and project.batch_job_id:
        _stop_separation(project.batch_job_id)
    s3, bucket = aws.client("s3"), get_settings().bucket
    blobs.delete_prefix(s3, bucket, keys.project_prefix(tenant, project_id))
    blobs.delete_prefix(s3, bucket, keys.upload(tenant, "base-track", project_id))
    blobs.delete_prefix(s3, bucket, keys.upload(tenant, "stem", project_id, STEMS[0]).rsplit("/", 1)[0] + "/")
    # Mixes of the project go with it (their audio was rendered from its stems).
    mix_ids = []
    for mix in Mix.query(tenant, filter_condition=Mix.project_id == project_id):
        mix.delete(add_version_condition=False)
        blobs.delete_prefix(s3, bucket, keys.mix_prefix(tenant, mix.mix_id))
        mix_ids.append(mix.mix_id)
    deps.release_job_slots(tenant, "mix", *mix_ids)
    return Response(status_code=204)


def _stop_separation(job_id: str) -> None:
    """Best effort: a job that still finishes finds the project gone and removes what it wrote."""
    try:
        aws.client("batch").terminate_job(jobId=job_id, reason="project deleted")
    except Exception as exc:
        logger.warning("could not stop the separation job", extra={"job_id": job_id, "error": str(exc)})
