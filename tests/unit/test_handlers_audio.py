"""The analyse and render handlers invoked in-process with their events from tests/events/ (the shapes
AWS sends), against moto's emulation of the resources template.yaml declares: what they write and the
status they leave."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from audio_helpers import stem_flac

from audiomixer.settings import STEMS, get_settings
from audiomixer.store import blobs, keys
from audiomixer.store.models import Mix, Project, Sound
from audiomixer_local.functions import load_module
from audiomixer_tools import signals as S

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "tests" / "events"
SR = 44100


def event(name: str) -> dict[str, Any]:
    return copy.deepcopy(json.loads((EVENTS / f"{name}.json").read_text()))


def body(name: str) -> dict[str, Any]:
    return dict(json.loads(event(name)["Records"][0]["body"]))


def handler(function_dir: str) -> Any:
    return load_module(ROOT / "functions" / function_dir / "app.py").handler


@pytest.fixture
def s3(aws: Any) -> Any:
    from audiomixer import aws as clients

    return clients.client("s3")


def flac(samples: np.ndarray) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, SR, format="FLAC", subtype="PCM_24")
    return buf.getvalue()


def stored_project(s3: Any, tenant: str, project_id: str, status: str, seconds: float = 1.5) -> Project:
    project = Project(
        tenant,
        project_id,
        name="song",
        status=status,
        stage="analyse" if status == "analysing" else "ready",
        stems=dict.fromkeys(STEMS, True),
        duration_s=seconds,
    )
    project.save()
    for i, stem in enumerate(STEMS):
        key = keys.stem(tenant, project_id, stem)
        blobs.write(s3, get_settings().bucket, key, stem_flac(seconds, 110.0 * (i + 1)), "audio/flac")
    return project


def test_analyse_writes_each_stems_analysis_and_makes_the_project_ready(aws, s3, lambda_context):
    message = body("analyse")
    tenant, project_id = message["tenant_id"], message["id"]
    stored_project(s3, tenant, project_id, "analysing")
    bucket = get_settings().bucket

    assert handler("analyse")(event("analyse"), lambda_context) == {"batchItemFailures": []}

    project = Project.get(tenant, project_id)
    assert project.status == "ready" and project.progress == 100
    assert set(project.analysis) == set(STEMS)
    for stem in STEMS:
        analysis = json.loads(blobs.read(s3, bucket, keys.stem_analysis(tenant, project_id, stem)))
        assert analysis["sample_rate"] == SR and analysis["n_samples"] == int(1.5 * SR)
        assert analysis["kind"] == "tonal"  # steady tones
        assert project.analysis[stem]["voiced_ratio"] > 0.8
    # Redelivered: nothing is recomputed or moved.
    before = blobs.read(s3, bucket, keys.stem_analysis(tenant, project_id, "bass"))
    assert handler("analyse")(event("analyse"), lambda_context) == {"batchItemFailures": []}
    assert Project.get(tenant, project_id).version == project.version
    assert blobs.read(s3, bucket, keys.stem_analysis(tenant, project_id, "bass")) == before


def test_analyse_sound_writes_the_grain_table_and_makes_the_sound_ready(aws, s3, lambda_context):
    message = body("analyse_sound")
    tenant, sound_id = message["tenant_id"], message["id"]
    Sound(tenant, sound_id, name="synth", status="analysing", stage="analyse").save()
    blobs.write(
        s3, get_settings().bucket, keys.sound_audio(tenant, sound_id), flac(S.style_tone(SR, f0_hz=220.0))
    )

    assert handler("analyse")(event("analyse_sound"), lambda_context) == {"batchItemFailures": []}

    sound = Sound.get(tenant, sound_id)
    assert sound.status == "ready"
    assert abs(sound.analysis["median_f0_hz"] - 220.0) < 3.0
    table = json.loads(blobs.read(s3, get_settings().bucket, keys.sound_analysis(tenant, sound_id)))
    assert table["grain_ms"] == 120 and len(table["starts"]) == sound.analysis["n_grains"] > 10


def ready_sound(s3: Any, tenant: str, sound_id: str) -> None:
    Sound(tenant, sound_id, name="synth", status="ready", stage="ready").save()
    blobs.write(
        s3, get_settings().bucket, keys.sound_audio(tenant, sound_id), flac(S.style_tone(SR, f0_hz=220.0))
    )


def test_render_writes_the_mix_at_the_requested_grain_and_completes(aws, s3, lambda_context):
    message = body("render")
    tenant, mix_id = message["tenant_id"], message["mix_id"]
    project_id, sound_id = "0123456789abcdef0123456789abcdef", "abcdefabcdefabcdefabcdefabcdef01"
    stored_project(s3, tenant, project_id, "ready")
    ready_sound(s3, tenant, sound_id)
    Mix(
        tenant,
        mix_id,
        project_id=project_id,
        config={"bass": {"style_sound_id": sound_id, "mode": "tonal"}, "vocals": {"enabled": False}},
        settings={"grain_duration_ms": 80, "seed": 4, "output_format": "flac"},
        output_format="flac",
    ).save()
    bucket = get_settings().bucket

    assert handler("render")(event("render"), lambda_context) == {"batchItemFailures": []}

    mix = Mix.get(tenant, mix_id)
    assert mix.status == "completed" and mix.progress == 100
    assert mix.output_key == keys.mix_output(tenant, mix_id, "flac")
    out, sr = sf.read(io.BytesIO(blobs.read(s3, bucket, mix.output_key)), always_2d=True)
    assert sr == SR and out.shape == (int(1.5 * SR), 2)
    # The style sound's grain table was cut at the mix's grain and kept for the next mix.
    table = json.loads(blobs.read(s3, bucket, keys.sound_grain_table(tenant, sound_id, 80)))
    assert table["grain_ms"] == 80
    # Redelivered: the finished mix is only re-announced.
    assert handler("render")(event("render"), lambda_context) == {"batchItemFailures": []}
    assert Mix.get(tenant, mix_id).version == mix.version


@pytest.mark.parametrize(
    ("config", "settings", "analysis", "reason"),
    [
        (
            {s: {"enabled": False} for s in STEMS},
            {},
            None,
            "every stem is disabled: enable at least one stem",
        ),
        ({}, {"grain_duration_ms": 5}, None, "the mix's stored settings are not valid"),
        (
            {"bass": {"style_sound_id": "abcdefabcdefabcdefabcdefabcdef01"}},
            {},
            {"kind": "tonal", "sample_rate": SR},
            "the analysis of the bass stem cannot be read (",
        ),
    ],
)
def test_a_render_that_cannot_succeed_fails_at_its_first_delivery(
    aws, s3, lambda_context, config, settings, analysis, reason
):
    message = body("render")
    tenant, mix_id = message["tenant_id"], message["mix_id"]
    project_id = "0123456789abcdef0123456789abcdef"
    bucket = get_settings().bucket
    stored_project(s3, tenant, project_id, "ready")
    ready_sound(s3, tenant, "abcdefabcdefabcdefabcdefabcdef01")
    if analysis is not None:
        blobs.write(s3, bucket, keys.stem_analysis(tenant, project_id, "bass"), json.dumps(analysis).encode())
    Mix(tenant, mix_id, project_id=project_id, config=config, settings=settings).save()

    # First delivery (ApproximateReceiveCount 1 of 5): no batch item failure, so SQS never retries it.
    assert handler("render")(event("render"), lambda_context) == {"batchItemFailures": []}

    mix = Mix.get(tenant, mix_id)
    assert mix.status == "failed" and mix.failure_reason.startswith(reason), mix.failure_reason
    assert analysis is None or mix.failure_reason.endswith("; upload the song again")
    assert not blobs.exists(s3, bucket, keys.mix_output(tenant, mix_id, "wav"))


@pytest.mark.parametrize("stored_table", [{"kind": "tonal"}, {"grain_ms": 100.0}])
def test_render_cuts_again_a_stored_grain_table_that_does_not_fit(aws, s3, lambda_context, stored_table):
    """A table from another version (does not parse, or was cut under another default grain) is not used."""
    message = body("render")
    tenant, mix_id = message["tenant_id"], message["mix_id"]
    project_id, sound_id = "0123456789abcdef0123456789abcdef", "abcdefabcdefabcdefabcdefabcdef01"
    bucket = get_settings().bucket
    stored_project(s3, tenant, project_id, "ready", seconds=1.0)
    ready_sound(s3, tenant, sound_id)
    if "starts" not in stored_table and "grain_ms" in stored_table:
        from audiomixer.dsp.grains import analyse_style_sound

        style, _ = sf.read(
            io.BytesIO(blobs.read(s3, bucket, keys.sound_audio(tenant, sound_id))), dtype="float32"
        )
        stored_table = analyse_style_sound(style, SR, grain_ms=stored_table["grain_ms"]).to_dict()
    blobs.write(s3, bucket, keys.sound_analysis(tenant, sound_id), json.dumps(stored_table).encode())
    Mix(tenant, mix_id, project_id=project_id, config={"bass": {"style_sound_id": sound_id}}).save()

    assert handler("render")(event("render"), lambda_context) == {"batchItemFailures": []}

    assert Mix.get(tenant, mix_id).status == "completed"
    table = json.loads(blobs.read(s3, bucket, keys.sound_grain_table(tenant, sound_id, 120)))
    assert table["grain_ms"] == 120
