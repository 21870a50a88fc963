"""Render: re-render the chosen stems with their style sounds (granular synthesis), mix, encode, store."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from pydantic import ValidationError
from pynamodb.exceptions import DoesNotExist

from audiomixer import aws, notify
from audiomixer.messages import RenderMessage
from audiomixer.mix_settings import GRAIN_MS_DEFAULT, MixSettings, StemConfig
from audiomixer.pipeline.audio_files import read_audio, read_json, write_json
from audiomixer.pipeline.failures import after_retries, fail, fail_stored, forget
from audiomixer.pipeline.sqs import PermanentError, parse_message
from audiomixer.settings import Settings, get_settings
from audiomixer.stem_sets import project_stems
from audiomixer.store import blobs, keys
from audiomixer.store.models import Mix, MixStatus, Project, ProjectStatus, Sound, SoundStatus
from audiomixer.store.status import raise_progress, still_exists, transition

if TYPE_CHECKING:  # the audio stack loads on the first render, not at import
    from mypy_boto3_s3 import S3Client

    from audiomixer.dsp.analysis import StemAnalysis
    from audiomixer.dsp.grains import GrainTable
    from audiomixer.dsp.render import StyleSound

logger = Logger(service="audiomixer", child=True)
T = TypeVar("T")

CONTENT_TYPES = {"wav": "audio/wav", "flac": "audio/flac", "mp3": "audio/mpeg"}


def process(record: SQSRecord) -> None:
    message = parse_message(record, RenderMessage)
    if message is not None:
        render(message)


def on_final_failure(record: SQSRecord, exc: Exception) -> None:
    message = parse_message(record, RenderMessage)
    if message is not None:
        reason = after_retries("rendering", exc, "request the mix again")
        fail_stored(Mix, message.tenant_id, message.mix_id, reason, "render")


def render(message: RenderMessage, *, s3: S3Client | None = None, settings: Settings | None = None) -> str:
    from audiomixer.dsp.render import RenderError

    settings = settings or get_settings()
    s3 = s3 or aws.client("s3")
    prefix = keys.mix_prefix(message.tenant_id, message.mix_id)
    try:
        mix = Mix.get(message.tenant_id, message.mix_id, consistent_read=True)
    except DoesNotExist:
        forget(s3, settings.bucket, prefix)  # deleted after an earlier delivery wrote its output
        return "deleted"
    if mix.status == MixStatus.QUEUED:
        transition(mix, MixStatus.RENDERING, stage="render", progress=5)
        notify.announce("mix", mix)
    if mix.status != MixStatus.RENDERING:
        notify.announce("mix", mix)  # a redelivery after completion: only re-announce
        return "duplicate"
    try:
        output_key, size = _render(mix, s3, settings)
    except PermanentError as exc:
        fail(mix, str(exc), "render")
        return "failed"
    except RenderError as exc:
        # Deterministic on this data: another delivery would fail the same way, only later.
        logger.exception("the render cannot succeed", extra={"mix_id": mix.mix_id})
        fail(mix, f"{exc}; try another style sound or other settings", "render")
        return "failed"
    except Exception:
        if still_exists(mix):
            raise
        forget(s3, settings.bucket, prefix)  # deleted mid-render (e.g. its stems went with the project)
        return "deleted"
    if transition(
        mix, MixStatus.COMPLETED, stage="completed", progress=100, output_key=output_key, size_bytes=size
    ):
        notify.announce("mix", mix)
    elif not still_exists(mix):
        forget(s3, settings.bucket, prefix)
        return "deleted"
    return "completed"


def stored_mix_settings(mix: Mix) -> tuple[MixSettings, dict[str, StemConfig]]:
    """The row's settings and per-stem config, validated by the models the API stored them with."""
    try:
        stored = {"output_format": mix.output_format, **(mix.settings or {})}
        mix_settings = MixSettings.model_validate(stored)
        config = {stem: StemConfig.model_validate(value) for stem, value in (mix.config or {}).items()}
    except ValidationError as exc:
        raise PermanentError(
            f"the mix's stored settings are not valid ({exc.errors()[0]['msg']}); request the mix again"
        ) from None
    return mix_settings, config


def _stored(
    s3: S3Client, bucket: str, key: str, parse: Callable[[dict[str, Any]], T], what: str, advice: str
) -> T:
    """Read a stored analysis object: one that does not parse will not parse on a retry either."""
    try:
        return parse(read_json(s3, bucket, key))
    except (KeyError, TypeError, ValueError) as exc:
        raise PermanentError(f"{what} cannot be read ({type(exc).__name__}: {exc}); {advice}") from exc


def _style(
    tenant_id: str, sound_id: str, grain_duration_ms: int, s3: S3Client, settings: Settings
) -> StyleSound:
    from audiomixer.dsp.render import StyleSound

    try:
        sound = Sound.get(tenant_id, sound_id, consistent_read=True)
    except DoesNotExist:
        raise PermanentError(f"style sound {sound_id} was deleted; choose another sound") from None
    if sound.status != SoundStatus.READY:
        raise PermanentError(
            f"style sound {sound_id} is {sound.status}, not analysed; wait for it or choose another"
        )
    samples, sample_rate = read_audio(s3, settings.bucket, keys.sound_audio(tenant_id, sound_id))
    table = _grain_table(tenant_id, sound_id, samples, sample_rate, grain_duration_ms, s3, settings)
    return StyleSound(samples, sample_rate, table)


def _grain_table(
    tenant_id: str,
    sound_id: str,
    samples: np.ndarray,
    sample_rate: int,
    grain_duration_ms: int,
    s3: S3Client,
    settings: Settings,
) -> GrainTable:
    """The sound's grain table at the mix's grain: the analyse stage's (default grain), else one cut at
    this grain on first use and kept beside the sound (deleted with it), as `audiomixer remix` cuts it.
    The sound's samples are at hand, so a stored table that does not fit is cut again, never fatal."""
    from audiomixer.dsp.grains import GrainTable, analyse_style_sound
    from audiomixer.dsp.render import RenderError

    key = keys.sound_grain_table(tenant_id, sound_id, grain_duration_ms)
    stored_keys = [key]
    if grain_duration_ms == GRAIN_MS_DEFAULT:
        stored_keys.insert(0, keys.sound_analysis(tenant_id, sound_id))
    for stored_key in stored_keys:
        if not blobs.exists(s3, settings.bucket, stored_key):
            continue
        try:
            stored = GrainTable.from_dict(read_json(s3, settings.bucket, stored_key))
        except (KeyError, TypeError, ValueError):  # written by another version: cut it again below
            logger.warning("ignoring a grain table that does not parse", extra={"key": stored_key})
            continue
        if stored.grain_ms == grain_duration_ms:  # one cut under another default is not this one
            return stored
    try:
        table = analyse_style_sound(samples, sample_rate, grain_ms=grain_duration_ms).to_dict()
    except Exception as exc:
        raise RenderError.from_engine(f"cutting style sound {sound_id} into grains", exc) from exc
    write_json(s3, settings.bucket, key, table)
    return GrainTable.from_dict(table)  # as the next reader will see it


def _render(mix: Mix, s3: S3Client, settings: Settings) -> tuple[str, int]:
    from audiomixer.dsp.analysis import StemAnalysis
    from audiomixer.dsp.render import RenderError, encode_mix, render_mix, stem_analysis

    tenant_id = mix.tenant_id
    try:
        project = Project.get(tenant_id, mix.project_id, consistent_read=True)
    except DoesNotExist:
        raise PermanentError(f"project {mix.project_id} was deleted; the mix cannot be rendered") from None
    if project.status != ProjectStatus.READY:
        raise PermanentError(f"project {mix.project_id} is {project.status}, not ready")
    mix_settings, config = stored_mix_settings(mix)
    stored = project.stems.as_dict()
    present = [s for s in project_stems(project, settings.demucs_model) if stored.get(s)]
    enabled = [s for s in present if (config.get(s) or StemConfig()).enabled]
    if not enabled:
        raise PermanentError("every stem is disabled: enable at least one stem")
    stems: dict[str, np.ndarray] = {}
    analyses: dict[str, StemAnalysis] = {}
    styles: dict[str, StyleSound] = {}
    sample_rate = settings.target_sample_rate
    for stem_name in enabled:
        samples, sample_rate = read_audio(
            s3, settings.bucket, keys.stem(tenant_id, project.project_id, stem_name)
        )
        stems[stem_name] = samples
        sound_id = (config.get(stem_name) or StemConfig()).style_sound_id
        if not sound_id:
            continue
        styles[stem_name] = _style(tenant_id, sound_id, mix_settings.grain_duration_ms, s3, settings)
        analysis_key = keys.stem_analysis(tenant_id, project.project_id, stem_name)
        if blobs.exists(s3, settings.bucket, analysis_key):
            what = f"the analysis of the {stem_name} stem"
            analyses[stem_name] = _stored(
                s3, settings.bucket, analysis_key, StemAnalysis.from_dict, what, "upload the song again"
            )
        else:
            try:
                analyses[stem_name] = stem_analysis(samples, sample_rate)
            except Exception as exc:
                raise RenderError.from_engine(f"analysing the {stem_name} stem", exc) from exc
    done = 0

    def stem_ready(_name: str, _samples: np.ndarray) -> None:
        nonlocal done
        done += 1
        if raise_progress(mix, 5 + (85 * done) // max(1, len(enabled)), MixStatus.RENDERING):
            notify.announce("mix", mix)

    mixed = render_mix(
        stems, sample_rate, mix_settings, config=config, analyses=analyses, styles=styles, on_stem=stem_ready
    )
    output_key = keys.mix_output(tenant_id, mix.mix_id, mix_settings.output_format)
    data = encode_mix(mixed, sample_rate, mix_settings)
    blobs.write(s3, settings.bucket, output_key, data, CONTENT_TYPES[mix_settings.output_format])
    return output_key, len(data)
