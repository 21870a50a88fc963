"""The caller's library of style sounds."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from fastapi.responses import RedirectResponse
from pynamodb.exceptions import DoesNotExist

from audiomixer import aws
from audiomixer.api import deps, errors, storage
from audiomixer.api.schemas import SoundDetail, SoundList, SoundSummary
from audiomixer.auth import Principal
from audiomixer.settings import get_settings
from audiomixer.store import blobs, keys
from audiomixer.store.models import Sound, SoundStatus

router = APIRouter(prefix="/api/v1/library", tags=["library"], responses=errors.API_RESPONSES)


def load_sound(tenant_id: str, sound_id: str) -> Sound:
    if not keys.is_id(sound_id):
        raise errors.not_found("sound")
    try:
        sound = Sound.get(tenant_id, sound_id)
    except DoesNotExist:
        raise errors.not_found("sound") from None
    deps.expire_if_unused(sound)
    return sound


def summary(sound: Sound) -> SoundSummary:
    return SoundSummary(
        sound_id=sound.sound_id,
        name=sound.name,
        status=sound.status,  # type: ignore[arg-type]
        stage=sound.stage,
        error=sound.failure_reason if sound.status == SoundStatus.FAILED else None,
        duration_s=float(sound.duration_s) if sound.duration_s is not None else None,
        created_at=sound.created_at,
        updated_at=sound.updated_at,
    )


@router.get("", response_model=SoundList, summary="List your style sounds, newest first")
def list_sounds(
    limit: storage.PageLimit = storage.PAGE_LIMIT_DEFAULT,
    cursor: storage.PageCursor = None,
    principal: Principal = Depends(deps.principal),
) -> SoundList:
    rows, next_cursor = storage.page(Sound, principal.tenant_id, "sound_id", limit, cursor)
    return SoundList(items=[summary(s) for s in rows], next_cursor=next_cursor)


@router.get("/{sound_id}", response_model=SoundDetail, responses=errors.responses(404))
def get_sound(sound_id: str, principal: Principal = Depends(deps.principal)) -> SoundDetail:
    sound = load_sound(principal.tenant_id, sound_id)
    return SoundDetail(
        **summary(sound).model_dump(),
        size_bytes=int(sound.size_bytes or 0),
        analysis=sound.analysis if isinstance(sound.analysis, dict) else None,
    )


@router.delete(
    "/{sound_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a style sound, its audio and analysis",
    responses=errors.responses(404),
)
def delete_sound(sound_id: str, principal: Principal = Depends(deps.principal)) -> Response:
    sound = load_sound(principal.tenant_id, sound_id)
    deps.delete_and_refund(sound)
    s3, bucket = aws.client("s3"), get_settings().bucket
    blobs.delete_prefix(s3, bucket, keys.sound_prefix(principal.tenant_id, sound_id))
    blobs.delete_prefix(s3, bucket, keys.upload(principal.tenant_id, "style-sound", sound_id))
    return Response(status_code=204)


@router.get(
    "/{sound_id}/audio",
    status_code=307,
    response_class=RedirectResponse,
    summary="Listen to a style sound as analysed (307 to a short-lived presigned URL; use curl -L)",
    responses={307: {"description": "Redirect to a presigned S3 URL"}, **errors.responses(404, 409)},
)
def download_sound(sound_id: str, principal: Principal = Depends(deps.principal)) -> RedirectResponse:
    """The style sound as it was analysed (FLAC, 44.1 kHz), to listen to it. 409 until it is ready.
    `curl -L -H 'Authorization: Bearer KEY' $API/api/v1/library/ID/audio -o sound.flac`"""
    sound = load_sound(principal.tenant_id, sound_id)
    if sound.status != "ready":
        raise errors.conflict(f"sound is {sound.status}, not ready")
    key = keys.sound_audio(principal.tenant_id, sound_id)
    settings = get_settings()
    url = blobs.presigned_get(
        aws.client("s3"), settings.bucket, key, f"sound-{sound_id}.flac", settings.download_expiry_s
    )
    return RedirectResponse(url, status_code=307)
