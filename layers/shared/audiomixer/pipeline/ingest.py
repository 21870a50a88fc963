"""Ingest: a raw upload landed under uploads/; decode it by content, validate it against the limits,
normalise it to 44.1 kHz stereo FLAC at its id-derived key, and hand it to the next stage."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from pynamodb.exceptions import DoesNotExist, UpdateError

from audiomixer import aws, notify
from audiomixer.messages import AnalyseMessage, SeparateMessage, send
from audiomixer.pipeline.failures import after_retries, fail, forget, kind_of
from audiomixer.pipeline.sqs import PermanentError
from audiomixer.settings import Settings, get_settings
from audiomixer.store import blobs, keys
from audiomixer.store.models import Project, ProjectStatus, Sound, SoundStatus
from audiomixer.store.status import still_exists, transition, update_fields

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

logger = Logger(service="audiomixer", child=True)


def s3_records(record: SQSRecord) -> list[tuple[str, str]]:
    """(bucket, key) pairs of the S3 notification inside an SQS record; S3's test event has none, and a
    malformed body has none either (retrying cannot fix it)."""
    try:
        body = json.loads(record.body)
    except ValueError:
        logger.error("dropping a malformed ingest message", extra={"message_id": record.message_id})
        return []
    records = body.get("Records", []) if isinstance(body, dict) else None
    if not isinstance(records, list):
        _malformed(record, "Records is not a list")
        return []
    out = []
    for entry in records:
        if not isinstance(entry, dict):
            _malformed(record, "a record is not an object")
            continue
        if not str(entry.get("eventName", "")).startswith("ObjectCreated"):
            continue
        try:
            s3 = entry["s3"]
            bucket, key = s3["bucket"]["name"], s3["object"]["key"]
        except (KeyError, TypeError):
            _malformed(record, "an ObjectCreated record without s3.bucket.name and s3.object.key")
            continue
        if not isinstance(bucket, str) or not isinstance(key, str):
            _malformed(record, "s3.bucket.name or s3.object.key is not a string")
            continue
        out.append((bucket, unquote_plus(key)))
    return out


def _malformed(record: SQSRecord, why: str) -> None:
    logger.error("dropping a malformed ingest message", extra={"message_id": record.message_id, "error": why})


def process(record: SQSRecord) -> None:
    for bucket, key in s3_records(record):
        ingest_object(bucket, key)


def on_final_failure(record: SQSRecord, exc: Exception) -> None:
    for _bucket, key in s3_records(record):
        try:
            upload = keys.UploadKey.parse(key)
        except ValueError:
            continue
        _fail(upload, after_retries("ingest", exc, "please upload the file again"))


def _load(upload: keys.UploadKey) -> Project | Sound | None:
    try:
        if upload.kind == "style-sound":
            return Sound.get(upload.tenant_id, upload.object_id, consistent_read=True)
        return Project.get(upload.tenant_id, upload.object_id, consistent_read=True)
    except DoesNotExist:
        return None


def _fail(upload: keys.UploadKey, reason: str) -> None:
    item = _load(upload)
    if item is not None:
        fail(item, reason, "ingest")


def ingest_object(
    bucket: str,
    key: str,
    *,
    s3: S3Client | None = None,
    sqs: SQSClient | None = None,
    settings: Settings | None = None,
) -> str:
    """Ingest one uploaded object; returns what happened (for logs and tests)."""
    settings = settings or get_settings()
    s3 = s3 or aws.client("s3")
    sqs = sqs or aws.client("sqs")
    try:
        upload = keys.UploadKey.parse(key)
    except ValueError:
        if key.startswith(keys.UPLOAD_PREFIX):
            # Nothing we issued writes here: remove it so no orphan stays behind.
            logger.warning("deleting object with an unexpected upload key", extra={"key": key})
            blobs.delete(s3, bucket, key)
        else:  # never touch the service's own objects, whatever an event claims
            logger.warning("ignoring an event for a key outside uploads/", extra={"key": key})
        return "ignored"
    item = _load(upload)
    if item is None:
        # Deleted while the upload was in flight (or never ours): a no-op, minus the orphan and whatever
        # an earlier delivery normalised before the delete.
        blobs.delete(s3, bucket, key)
        for prefix in _prefixes(upload):
            forget(s3, bucket, prefix)
        return "deleted"
    stem_done = isinstance(item, Project) and upload.kind == "stem" and item.stems.as_dict().get(upload.stem)
    if item.status != "queued" or stem_done:
        blobs.delete(s3, bucket, key)  # a redelivery: the work is done, only re-announce it
        notify.announce(kind_of(item), item)
        return "duplicate"
    try:
        result = _ingest(upload, item, bucket, key, s3, sqs, settings)
    except PermanentError as exc:
        fail(item, str(exc), "ingest", expires_at=None)
        result = "failed"
    except Exception:
        if still_exists(item):
            raise
        result = "deleted"
    blobs.delete(s3, bucket, key)
    if not still_exists(item):  # deleted while we worked: leave nothing of it behind
        for prefix in _prefixes(upload):
            forget(s3, bucket, prefix)
        return "deleted"
    return result


def _prefixes(upload: keys.UploadKey) -> list[str]:
    """Where ingest writes for an upload (the sound's or the project's own prefix), plus the other raw
    stem uploads of the same project."""
    if upload.kind == "style-sound":
        return [keys.sound_prefix(upload.tenant_id, upload.object_id)]
    out = [keys.project_prefix(upload.tenant_id, upload.object_id)]
    if upload.kind == "stem":
        raw = keys.upload(upload.tenant_id, "stem", upload.object_id, upload.stem)
        out.append(raw.rsplit("/", 1)[0] + "/")
    return out


def _limits(settings: Settings, upload: keys.UploadKey) -> Any:
    from audiomixer.dsp.audio_io import AudioLimits

    if upload.kind == "style-sound":
        return AudioLimits.from_settings(settings, max_duration_s=settings.style_sound_max_duration_s)
    return AudioLimits.from_settings(settings)


def _check_decoded_size(sample_rate: int, channels: int, duration_s: float, settings: Settings) -> None:
    """Refuse audio whose float32 decode would not fit the function's memory (header values, no decode)."""
    needed_mb = sample_rate * channels * duration_s * 4 / 2**20
    if needed_mb > settings.max_decoded_mb:
        raise PermanentError(
            f"the audio is too large to process: {duration_s / 60:.1f} minutes at {sample_rate} Hz in "
            f"{channels} channels needs {needed_mb:.0f} MB decoded (limit {settings.max_decoded_mb} MB); "
            "export it as stereo at 44.1 or 48 kHz, or upload a shorter file"
        )


def _decode(data: bytes, upload: keys.UploadKey, settings: Settings) -> tuple[bytes, float]:
    """Validated, normalised FLAC bytes and the duration in seconds."""
    from audiomixer.dsp.audio_io import AudioDecodeError, decode_audio, encode_audio, normalise, probe

    limits = _limits(settings, upload)
    try:
        info = probe(data, limits)
        _check_decoded_size(
            info.sample_rate, info.channels, info.duration_s or limits.max_duration_s, settings
        )
        decoded = decode_audio(data, limits)
    except AudioDecodeError as exc:
        raise PermanentError(exc.reason) from exc
    samples = normalise(decoded, settings.target_sample_rate)
    return encode_audio(samples, settings.target_sample_rate, "flac"), samples.shape[
        0
    ] / settings.target_sample_rate


def _ingest(
    upload: keys.UploadKey,
    item: Project | Sound,
    bucket: str,
    key: str,
    s3: S3Client,
    sqs: SQSClient,
    settings: Settings,
) -> str:
    size = blobs.size(s3, bucket, key)
    if size is None:
        return "missing"  # already consumed by an earlier delivery
    if size == 0:
        raise PermanentError("the uploaded file is empty (0 bytes); upload an audio file")
    declared = int(item.size_bytes or 0) if upload.kind != "stem" else 0
    if declared and size > declared:
        # The presigned form bound the size; an emulator (or a bug) that lets more through is caught here.
        raise PermanentError(
            f"the uploaded file is {size} bytes, more than the {declared} bytes declared for this upload; "
            "request a new upload with the real size"
        )
    if size > settings.max_upload_bytes:
        # Presigned POST conditions are not enforced by every emulator, so the limit is checked here too.
        raise PermanentError(
            f"the uploaded file is {size / 1e6:.1f} MB; the limit is {settings.max_upload_bytes / 1e6:.0f} MB"
        )
    data = blobs.read(s3, bucket, key, max_bytes=settings.max_upload_bytes)
    flac, duration = _decode(data, upload, settings)
    from audiomixer.dsp.audio_io import content_hash

    digest = content_hash(data)  # of the upload itself: what "an identical upload" means

    if isinstance(item, Sound):
        blobs.write(s3, bucket, keys.sound_audio(upload.tenant_id, upload.object_id), flac, "audio/flac")
        if transition(
            item,
            SoundStatus.ANALYSING,
            stage="analyse",
            duration_s=duration,
            size_bytes=len(flac),
            content_hash=digest,
            expires_at=None,
        ):
            send(
                sqs,
                settings.analyse_queue_url,
                AnalyseMessage(tenant_id=item.tenant_id, kind="sound", id=item.sound_id),
            )
            notify.announce("sound", item)
        return "sound"

    if upload.kind == "stem":
        return _ingest_stem(upload, item, flac, duration, bucket, s3, sqs, settings)

    source_key = keys.project_source(item.tenant_id, item.project_id)
    blobs.write(s3, bucket, source_key, flac, "audio/flac")
    if _reuse_identical(item, digest, bucket, s3, sqs, settings, duration, len(flac)):
        return "reused"
    if not update_fields(
        item,
        only_in={ProjectStatus.QUEUED},
        stage="separate",
        duration_s=duration,
        size_bytes=len(flac),
        content_hash=digest,
        tenant_content_hash=f"{item.tenant_id}#{digest}",
        expires_at=None,
    ):
        return "gone"
    send(
        sqs,
        settings.separate_queue_url,
        SeparateMessage(tenant_id=item.tenant_id, project_id=item.project_id),
    )
    notify.announce("project", item, stage="ingest")
    return "song"


def _ingest_stem(
    upload: keys.UploadKey,
    item: Project,
    flac: bytes,
    duration: float,
    bucket: str,
    s3: S3Client,
    sqs: SQSClient,
    settings: Settings,
) -> str:
    assert upload.stem is not None
    blobs.write(s3, bucket, keys.stem(item.tenant_id, item.project_id, upload.stem), flac, "audio/flac")
    # Each stem's flag is its own map path; without the version condition, parallel ingests of one
    # project's stems do not refuse one another.
    try:
        item.update(
            actions=[
                # size_bytes already holds the stems' upload sizes (the API's quota reservation).
                Project.stems[upload.stem].set(True),
                Project.duration_s.set(max(duration, item.duration_s or 0)),
            ],
            condition=Project.status == ProjectStatus.QUEUED,
            add_version_condition=False,
        )
    except UpdateError as exc:
        if exc.cause_response_code != "ConditionalCheckFailedException":
            raise
        return "gone"  # deleted or failed meanwhile
    item.refresh(consistent_read=True)
    expected = item.stems.as_dict()
    # A presigned stems upload set a TTL for forms never used: the project is kept once all stems arrived.
    if (
        expected
        and all(expected.values())
        and transition(item, ProjectStatus.ANALYSING, stage="analyse", progress=50, expires_at=None)
    ):
        send(
            sqs,
            settings.analyse_queue_url,
            AnalyseMessage(tenant_id=item.tenant_id, kind="project", id=item.project_id),
        )
        notify.announce("project", item)
    return "stem"


def _reuse_identical(
    item: Project,
    digest: str,
    bucket: str,
    s3: S3Client,
    sqs: SQSClient,
    settings: Settings,
    duration: float,
    size: int,
) -> bool:
    """An identical upload by the same tenant reuses the earlier stems and analysis."""
    for match in Project.content_hash_index.query(f"{item.tenant_id}#{digest}"):
        if match.project_id == item.project_id:
            continue
        try:
            earlier = Project.get(match.tenant_id, match.project_id, consistent_read=True)
        except DoesNotExist:
            continue
        if earlier.status != ProjectStatus.READY or earlier.source_kind != "song":
            continue
        # Only stems separated the same way: another model or two-stem mode gives other stems.
        default = settings.demucs_model
        if (earlier.separation_model or default, earlier.two_stems) != (
            item.separation_model or default,
            item.two_stems,
        ):
            continue
        earlier_stems = [s for s, done in earlier.stems.as_dict().items() if done]
        for stem_name in earlier_stems:
            blobs.copy(
                s3,
                bucket,
                keys.stem(earlier.tenant_id, earlier.project_id, stem_name),
                keys.stem(item.tenant_id, item.project_id, stem_name),
            )
            analysis_key = keys.stem_analysis(earlier.tenant_id, earlier.project_id, stem_name)
            if blobs.exists(s3, bucket, analysis_key):
                blobs.copy(
                    s3, bucket, analysis_key, keys.stem_analysis(item.tenant_id, item.project_id, stem_name)
                )
        if transition(
            item,
            ProjectStatus.READY,
            stage="ready",
            progress=100,
            stems=dict.fromkeys(earlier_stems, True),
            analysis=earlier.analysis,
            duration_s=duration,
            size_bytes=size,
            content_hash=digest,
            tenant_content_hash=f"{item.tenant_id}#{digest}",
            expires_at=None,
        ):
            notify.announce(
                "project", item, detail=f"identical to project {earlier.project_id}: stems reused"
            )
        logger.info(
            "reused stems of an identical upload",
            extra={"project_id": item.project_id, "from": earlier.project_id},
        )
        return True
    return False
