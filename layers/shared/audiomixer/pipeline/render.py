"""Render: re-render the chosen stems with their style sounds (granular synthesis), mix, encode, store."""

from __future__ import annotations

from typing import Any

import numpy as np
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from pynamodb.exceptions import DoesNotExist

from audiomixer import aws, notify
from audiomixer.messages import RenderMessage
from audiomixer.pipeline.audio_files import read_audio, read_json
from audiomixer.pipeline.failures import after_retries, fail, fail_stored, forget
from audiomixer.pipeline.sqs import PermanentError, parse_message
from audiomixer.settings import STEMS, Settings, get_settings
from audiomixer.store import blobs, keys
from audiomixer.store.models import Mix, Project, Sound
from audiomixer.store.status import raise_progress, still_exists, transition

logger = Logger(service="audiomixer", child=True)

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


def render(message: RenderMessage, *, s3: Any = None, settings: Settings | None = None) -> str:
    settings = settings or get_settings()
    s3 = s3 or aws.client("s3")
    prefix = keys.mix_prefix(message.tenant_id, message.mix_id)
    try:
        mix = Mix.get(message.tenant_id, message.mix_id, consistent_read=True)
    except DoesNotExist:
        forget(s3, settings.bucket, prefix)  # deleted after an earlier delivery wrote its output
        return "deleted"
    if mix.status == "queued":
        transition(mix, "rendering", stage="render", progress=5)
        notify.announce("mix", mix)
    if mix.status != "rendering":
        notify.announce("mix", mix)  # a redelivery after completion: only re-announce
        return "duplicate"
    try:
        output_key, size = _render(mix, s3, settings)
    except PermanentError as exc:
        fail(mix, str(exc), "render")
        return "failed"
    except Exception:
        if still_exists(mix):
            raise
        forget(s3, settings.bucket, prefix)
        return "deleted"
    if transition(mix, "completed", stage="completed", progress=100, output_key=output_key, size_bytes=size):
        notify.announce("mix", mix)
    elif not still_exists(mix):
        forget(s3, settings.bucket, prefix)
        return "deleted"
    return "completed"


def _style(tenant_id: str, sound_id: str, s3: Any, settings: Settings) -> tuple[np.ndarray, int, Any]:
    from audiomixer.dsp.grains import GrainTable

    try:
        sound = Sound.get(tenant_id, sound_id, consistent_read=True)
    except DoesNotExist:
        raise PermanentError(f"style sound {sound_id} was deleted; choose another sound") from None
    if sound.status != "ready":
        raise PermanentError(
            f"style sound {sound_id} is {sound.status}, not analysed; wait for it or choose another"
        )
    samples, sample_rate = read_audio(s3, settings.bucket, keys.sound_audio(tenant_id, sound_id))
    table = GrainTable.from_dict(read_json(s3, settings.bucket, keys.sound_analysis(tenant_id, sound_id)))
    return samples, sample_rate, table


def _render(mix: Mix, s3: Any, settings: Settings) -> tuple[str, int]:
    from audiomixer.dsp.analysis import StemAnalysis, analyse_stem
    from audiomixer.dsp.audio_io import encode_audio
    from audiomixer.dsp.granular import render_stem
    from audiomixer.dsp.mixer import mix_stems

    tenant_id = mix.tenant_id
    try:
        project = Project.get(tenant_id, mix.project_id, consistent_read=True)
    except DoesNotExist:
        raise PermanentError(f"project {mix.project_id} was deleted; the mix cannot be rendered") from None
    if project.status != "ready":
        raise PermanentError(f"project {mix.project_id} is {project.status}, not ready")
    options = dict(mix.settings or {})
    config: dict[str, dict[str, Any]] = dict(mix.config or {})
    present = [s for s in STEMS if project.stems.as_dict().get(s)]
    stems: dict[str, np.ndarray] = {}
    volumes: dict[str, float] = {}
    sample_rate = settings.target_sample_rate
    for done, stem_name in enumerate(present, start=1):
        stem_config = config.get(stem_name)  # a stem absent from the request is mixed unchanged at 1.0
        if stem_config is not None and not stem_config.get("enabled", True):
            continue
        samples, sample_rate = read_audio(
            s3, settings.bucket, keys.stem(tenant_id, project.project_id, stem_name)
        )
        sound_id = (stem_config or {}).get("style_sound_id")
        if sound_id:
            style, style_sr, table = _style(tenant_id, sound_id, s3, settings)
            analysis_key = keys.stem_analysis(tenant_id, project.project_id, stem_name)
            if blobs.exists(s3, settings.bucket, analysis_key):
                analysis = StemAnalysis.from_dict(read_json(s3, settings.bucket, analysis_key))
            else:
                analysis = analyse_stem(samples, sample_rate)
            samples = render_stem(
                samples,
                sample_rate,
                analysis,
                style,
                style_sr,
                table,
                grain_ms=float(options.get("grain_duration_ms", 120)),
                use_pitch_mapping=bool(options.get("use_pitch_mapping", True)),
                use_envelope=bool(options.get("use_envelope", True)),
                mode=(stem_config or {}).get("mode", "auto"),
                seed=int(options.get("seed", 0)),
            )
        stems[stem_name] = samples
        volumes[stem_name] = float((stem_config or {}).get("volume", 1.0))
        if raise_progress(mix, 5 + (85 * done) // len(present), "rendering"):
            notify.announce("mix", mix)
    if not stems:
        raise PermanentError("every stem is disabled: enable at least one stem")
    mixed = mix_stems(stems, volumes, sample_rate, target_lufs=options.get("target_lufs"))
    fmt = str(options.get("output_format") or mix.output_format or "wav")
    output_key = keys.mix_output(tenant_id, mix.mix_id, fmt)
    data = encode_audio(mixed, sample_rate, fmt)
    blobs.write(s3, settings.bucket, output_key, data, CONTENT_TYPES[fmt])
    return output_key, len(data)
