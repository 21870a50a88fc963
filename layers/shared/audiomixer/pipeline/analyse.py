"""Analyse: per-stem onsets, f0, envelope and silence for a project; a grain table for a style sound."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from pynamodb.exceptions import DoesNotExist

from audiomixer import aws, notify
from audiomixer.messages import AnalyseMessage
from audiomixer.pipeline.audio_files import read_audio, read_json, write_json
from audiomixer.pipeline.failures import after_retries, fail_stored, forget
from audiomixer.pipeline.sqs import parse_message
from audiomixer.settings import Settings, get_settings
from audiomixer.stem_sets import project_stems
from audiomixer.store import blobs, keys
from audiomixer.store.models import Project, ProjectStatus, Sound, SoundStatus
from audiomixer.store.status import raise_progress, still_exists, transition

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

logger = Logger(service="audiomixer", child=True)


def process(record: SQSRecord) -> None:
    message = parse_message(record, AnalyseMessage)
    if message is not None:
        analyse(message)


def on_final_failure(record: SQSRecord, exc: Exception) -> None:
    message = parse_message(record, AnalyseMessage)
    if message is not None:
        model = Project if message.kind == "project" else Sound
        reason = after_retries("analysis", exc, "upload the audio again")
        fail_stored(model, message.tenant_id, message.id, reason, "analyse")


def analyse(message: AnalyseMessage, *, s3: S3Client | None = None, settings: Settings | None = None) -> str:
    settings = settings or get_settings()
    s3 = s3 or aws.client("s3")
    if message.kind == "sound":
        return analyse_sound(message.tenant_id, message.id, s3, settings)
    return analyse_project(message.tenant_id, message.id, s3, settings)


def stem_summary(analysis: Any) -> dict[str, Any]:
    data = analysis.to_dict()
    return {
        "kind": data.get("kind"),
        "duration_s": round(float(analysis.duration_s), 3),
        "onsets": len(data.get("onsets_s", [])),
        # As the analysis computed it (over the stem's active frames), not recomputed another way here.
        "voiced_ratio": round(float(analysis.voiced_ratio), 3),
    }


def analyse_project(tenant_id: str, project_id: str, s3: S3Client, settings: Settings) -> str:
    prefix = keys.project_prefix(tenant_id, project_id)
    try:
        project = Project.get(tenant_id, project_id, consistent_read=True)
    except DoesNotExist:
        # Deleted while analysis ran (a delivery that wrote, then failed): what it wrote must go too.
        forget(s3, settings.bucket, prefix)
        return "deleted"
    if project.status != ProjectStatus.ANALYSING:
        notify.announce("project", project)
        return "duplicate"
    try:
        summary = _analyse_stems(project, s3, settings)
    except Exception:
        if still_exists(project):
            raise
        forget(s3, settings.bucket, prefix)  # e.g. NoSuchKey: the delete took the stems mid-analysis
        return "deleted"
    if transition(project, ProjectStatus.READY, stage="ready", progress=100, analysis=summary):
        notify.announce("project", project)
    elif not still_exists(project):
        forget(s3, settings.bucket, prefix)
        return "deleted"
    return "ready"


def _analyse_stems(project: Project, s3: S3Client, settings: Settings) -> dict[str, Any]:
    from audiomixer.dsp.analysis import StemAnalysis, analyse_stem

    tenant_id, project_id = project.tenant_id, project.project_id
    stored = project.stems.as_dict()
    present = [s for s in project_stems(project, settings.demucs_model) if stored.get(s)]
    summary: dict[str, Any] = {}
    for done, stem_name in enumerate(present, start=1):
        analysis_key = keys.stem_analysis(tenant_id, project_id, stem_name)
        if blobs.exists(s3, settings.bucket, analysis_key):  # a redelivery resumes where it stopped
            analysis = StemAnalysis.from_dict(read_json(s3, settings.bucket, analysis_key))
        else:
            samples, sample_rate = read_audio(
                s3, settings.bucket, keys.stem(tenant_id, project_id, stem_name)
            )
            analysis = analyse_stem(samples, sample_rate)
            write_json(s3, settings.bucket, analysis_key, analysis.to_dict())
        summary[stem_name] = stem_summary(analysis)
        if raise_progress(project, 90 + (10 * done) // (len(present) + 1), ProjectStatus.ANALYSING):
            notify.announce("project", project)
    return summary


def analyse_sound(tenant_id: str, sound_id: str, s3: S3Client, settings: Settings) -> str:
    from audiomixer.dsp.grains import analyse_style_sound

    prefix = keys.sound_prefix(tenant_id, sound_id)
    try:
        sound = Sound.get(tenant_id, sound_id, consistent_read=True)
    except DoesNotExist:
        forget(s3, settings.bucket, prefix)
        return "deleted"
    if sound.status != SoundStatus.ANALYSING:
        notify.announce("sound", sound)
        return "duplicate"
    try:
        samples, sample_rate = read_audio(s3, settings.bucket, keys.sound_audio(tenant_id, sound_id))
        table = analyse_style_sound(samples, sample_rate)
        write_json(s3, settings.bucket, keys.sound_analysis(tenant_id, sound_id), table.to_dict())
    except Exception:
        if still_exists(sound):
            raise
        forget(s3, settings.bucket, prefix)
        return "deleted"
    if transition(sound, SoundStatus.READY, stage="ready", analysis=table.summary()):
        notify.announce("sound", sound)
    elif not still_exists(sound):
        forget(s3, settings.bucket, prefix)
        return "deleted"
    return "ready"
