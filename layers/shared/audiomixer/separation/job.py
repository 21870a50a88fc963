"""The separation job (what the gpu_batch entrypoint runs) and the offline one-file separation."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import soundfile as sf

from audiomixer.separation.checkpoints import S3CheckpointStore
from audiomixer.separation.chunked import ProgressCallback, separate_to_files
from audiomixer.separation.model import SeparationError, load_model
from audiomixer.settings import STEMS, get_settings
from audiomixer.stem_sets import ordered

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

logger = logging.getLogger(__name__)

# Percent of the job spent before/after the chunks (download / upload), for on_progress.
_DOWNLOAD_PCT = 2
_UPLOAD_PCT = 96
META_SOURCE_ETAG = "source-etag"
META_MODEL = "demucs-model"
META_STEMS = "stem-set"  # every stem of one separation, comma-separated, on each of its objects


def stem_keys(stems_prefix: str, stems: Sequence[str] = STEMS) -> dict[str, str]:
    prefix = stems_prefix.rstrip("/")
    return {stem: f"{prefix}/{stem}.flac" for stem in stems}


def _head(s3: S3Client, bucket: str, key: str) -> dict[str, Any] | None:
    try:
        return dict(s3.head_object(Bucket=bucket, Key=key))
    except s3.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def _model_tag(model_name: str, two_stems: str | None) -> str:
    return model_name if two_stems is None else f"{model_name} --two-stems {two_stems}"


def _already_done(
    s3: S3Client, bucket: str, stems_prefix: str, etag: str, model_tag: str
) -> dict[str, str] | None:
    """stem -> key when every stem of one earlier separation of this very source, by this model and
    mode, exists (the stems are named on each object, so this needs no model loaded)."""
    prefix = stems_prefix.rstrip("/") + "/"
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    if not listed:
        return None
    first = _head(s3, bucket, str(listed[0]["Key"]))
    stem_set = ((first or {}).get("Metadata", {}).get(META_STEMS) or "").split(",")
    keys = stem_keys(stems_prefix, [s for s in stem_set if s])
    if not keys:
        return None
    for key in keys.values():
        head = _head(s3, bucket, key)
        meta = (head or {}).get("Metadata", {})
        if head is None or meta.get(META_SOURCE_ETAG) != etag or meta.get(META_MODEL) != model_tag:
            return None
        if meta.get(META_STEMS) != ",".join(keys):
            return None
    return keys


def run_separation_job(
    *,
    s3: S3Client,
    bucket: str,
    source_key: str,
    stems_prefix: str,
    checkpoint_prefix: str,
    model_name: str,
    repo: Path | None,
    chunk_s: float,
    overlap_s: float,
    device: str | None = None,
    on_progress: Callable[[int, str], None] | None = None,
    work_dir: Path | None = None,
    segment: float | None = None,
    two_stems: str | None = None,
) -> dict[str, str]:
    """Separate `s3://bucket/source_key` (FLAC) into `{stems_prefix}/{stem}.flac`; returns stem -> key,
    in the API's stem order. The stems are the model's sources (`other` the residual), or `two_stems`
    and `no_{two_stems}` (the residual) in two-stem mode.

    Resumable: finished chunks are checkpointed under `checkpoint_prefix`, and a rerun (next Batch
    attempt, re-submitted job) resumes after the last one. Idempotent: stems already made from this
    source (same ETag) by this model are returned at once. Checkpoints are deleted once the stems are
    uploaded. Raises ModelUnavailableError (before downloading anything) when the weights are missing,
    SeparationError for unusable input."""
    store = S3CheckpointStore(s3, bucket, checkpoint_prefix)
    source_head = _head(s3, bucket, source_key)
    if source_head is None:
        raise SeparationError(f"source s3://{bucket}/{source_key} does not exist")
    etag = str(source_head["ETag"]).strip('"')
    model_tag = _model_tag(model_name, two_stems)
    done = _already_done(s3, bucket, stems_prefix, etag, model_tag)
    if done is not None:
        store.clear()  # a previous attempt may have died between uploading and cleaning up
        logger.info("stems for %s already exist; nothing to do", source_key)
        if on_progress:
            on_progress(100, "stems already separated")
        return done

    attempt = os.environ.get("AWS_BATCH_JOB_ATTEMPT")
    logger.info("separating %s with %s (batch attempt %s)", source_key, model_tag, attempt or "-")
    model = load_model(model_name, repo, device)  # fails fast, before the download

    def chunk_progress(percent: int, message: str) -> None:
        if on_progress:
            on_progress(_DOWNLOAD_PCT + (_UPLOAD_PCT - _DOWNLOAD_PCT) * percent // 100, message)

    with tempfile.TemporaryDirectory(prefix="separation-", dir=work_dir) as tmp:
        tmp_dir = Path(tmp)
        source = tmp_dir / "source.flac"
        if on_progress:
            on_progress(0, "downloading source")
        s3.download_file(bucket, source_key, str(source))
        result = separate_to_files(
            source,
            tmp_dir / "stems",
            model=model,
            model_name=model_name,
            chunk_s=chunk_s,
            overlap_s=overlap_s,
            segment=segment,
            device=device,
            store=store,
            source_id=f"s3:{etag}:{source_head.get('ContentLength')}",
            on_progress=chunk_progress,
            work_dir=tmp_dir,
            two_stems=two_stems,
        )
        keys = stem_keys(stems_prefix, ordered(result.paths))
        if on_progress:
            on_progress(_UPLOAD_PCT, "uploading stems")
        for stem, key in keys.items():
            s3.upload_file(
                str(result.paths[stem]),
                bucket,
                key,
                ExtraArgs={
                    "ContentType": "audio/flac",
                    "Metadata": {
                        META_SOURCE_ETAG: etag,
                        META_MODEL: model_tag,
                        META_STEMS: ",".join(keys),
                    },
                },
            )
    store.clear()
    if on_progress:
        on_progress(100, "stems ready")
    return keys


def separate_file(
    path: Path,
    model_name: str | None = None,
    repo: Path | None = None,
    device: str | None = None,
    two_stems: str | None = None,
    on_progress: ProgressCallback | None = None,
) -> dict[str, np.ndarray]:
    """Separate a local audio file: stem -> (frames, 2) float32 at the model's rate (44.1 kHz), in the
    API's stem order; the same stems as the service's job for this model and `two_stems`.
    `model_name`/`repo` default to the DEMUCS_MODEL / DEMUCS_REPO settings; `on_progress(percent,
    message)` is called after each chunk."""
    settings = get_settings()
    name = model_name or settings.demucs_model
    if repo is None and settings.demucs_repo:
        repo = Path(settings.demucs_repo)
    model = load_model(name, repo, device)
    with tempfile.TemporaryDirectory(prefix="separation-") as tmp:
        result = separate_to_files(
            Path(path),
            Path(tmp),
            model=model,
            model_name=name,
            chunk_s=settings.separation_chunk_s,
            overlap_s=settings.separation_overlap_s,
            device=device,
            work_dir=Path(tmp),
            two_stems=two_stems,
            on_progress=on_progress,
        )
        return {
            stem: sf.read(str(result.paths[stem]), dtype="float32", always_2d=True)[0]
            for stem in ordered(result.paths)
        }
