"""One render path, through the embedded local stack: the same stems, style sounds and settings give
bit-identical audio through `POST /api/v1/mix` and `audiomixer remix --stems`, and a render that cannot
succeed ends the mix `failed` with a reason at its first delivery, not after the queue's retries."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from api_client import Api
from audio_helpers import insert_ready_project

from audiomixer_tools import signals as S
from audiomixer_tools.remix import main as remix

pytestmark = pytest.mark.timeout(300)
SR = 44100


def s3() -> Any:
    from audiomixer import aws

    return aws.client("s3")


def bucket() -> str:
    from audiomixer.settings import get_settings

    return get_settings().bucket


@pytest.fixture(scope="module")
def world(local_stack: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A tenant with a ready project made from four stem files and two ready style sounds, uploaded
    through the API; the same files stay on disk for the CLI."""
    from audiomixer.auth import create_api_key

    root = tmp_path_factory.mktemp("render-path")
    stems_dir = root / "stems"
    stems_dir.mkdir()
    stems, _ = S.synth_song(3.0, SR, seed=5)
    for name, data in stems.items():
        sf.write(stems_dir / f"{name}.flac", data, SR, format="FLAC", subtype="PCM_24")
    sf.write(root / "kit.flac", S.style_kit(SR, kit=1), SR, format="FLAC", subtype="PCM_24")
    sf.write(
        root / "synth.flac",
        S.style_tone(SR, f0_hz=220.0, timbre="square"),
        SR,
        format="FLAC",
        subtype="PCM_24",
    )

    tenant = "render-path"
    client = Api(local_stack.local_url, create_api_key(tenant, label="render-path"), tenant)
    files = {
        name: (f"{name}.flac", (stems_dir / f"{name}.flac").read_bytes(), "audio/flac") for name in stems
    }
    response = client.post("/api/v1/upload/stems", files=files, data={"project_name": "render path"})
    assert response.status_code == 202, response.text
    project_id = response.json()["project_id"]
    response = client.post(
        "/api/v1/upload/style-sound",
        files=[
            ("files", ("kit.flac", (root / "kit.flac").read_bytes(), "audio/flac")),
            ("files", ("synth.flac", (root / "synth.flac").read_bytes(), "audio/flac")),
        ],
    )
    assert response.status_code == 202, response.text
    kit_id, synth_id = (s["sound_id"] for s in response.json()["sounds"])
    assert client.wait(f"/api/v1/projects/{project_id}/status", 120)["status"] == "ready"
    for sound_id in (kit_id, synth_id):
        assert client.wait(f"/api/v1/library/{sound_id}", 120)["status"] == "ready"
    return {
        "client": client,
        "tenant": tenant,
        "project_id": project_id,
        "kit_id": kit_id,
        "synth_id": synth_id,
        "stems_dir": stems_dir,
        "kit": root / "kit.flac",
        "synth": root / "synth.flac",
    }


def render_through_api(world: dict[str, Any], body: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
    client = world["client"]
    response = client.post("/api/v1/mix", json={"project_id": world["project_id"], **body})
    assert response.status_code == 202, response.text
    mix = client.wait(f"/api/v1/mix/{response.json()['mix_id']}", 120)
    assert mix["status"] == "completed", mix
    download = client.http.get(mix["download_url"], follow_redirects=True)
    assert download.status_code == 200, download.text
    audio, sr = sf.read(io.BytesIO(download.content), dtype="float64", always_2d=True)
    assert sr == SR
    return audio, mix


def render_through_cli(world: dict[str, Any], out: Path, extra: list[str]) -> np.ndarray:
    args = ["--stems", str(world["stems_dir"]), "-o", str(out), "--no-progress"]
    args += ["--style", f"drums={world['kit']}", "--style", f"bass={world['synth']}", *extra]
    assert remix(args) == 0
    audio, sr = sf.read(out, dtype="float64", always_2d=True)
    assert sr == SR
    return audio


def test_ingest_keeps_these_stems_sample_for_sample(world: dict[str, Any]) -> None:
    """The premise of the comparison below: the service renders the very samples the CLI reads."""
    from audiomixer.store import blobs, keys

    for name in ("drums", "bass", "vocals", "other"):
        stored, _ = sf.read(
            io.BytesIO(blobs.read(s3(), bucket(), keys.stem(world["tenant"], world["project_id"], name))),
            dtype="float32",
        )
        original, _ = sf.read(world["stems_dir"] / f"{name}.flac", dtype="float32")
        np.testing.assert_array_equal(stored, original)


@pytest.mark.parametrize(
    ("settings", "flags"),
    [
        # Not the default grain: the service cuts the style sounds' grain tables at 80 ms, as the CLI does.
        ({"grain_duration_ms": 80, "seed": 3}, ["--grain-ms", "80", "--seed", "3"]),
        # The defaults on both sides (the analyse stage's stored 120 ms tables).
        ({}, []),
        ({"use_pitch_mapping": False, "use_envelope": False, "target_lufs": -20, "seed": 11},
         ["--no-pitch-mapping", "--no-envelope", "--target-lufs", "-20", "--seed", "11"]),
    ],
)  # fmt: skip
def test_api_and_cli_render_bit_identical_audio(
    world: dict[str, Any], tmp_path: Path, settings: dict[str, Any], flags: list[str]
) -> None:
    config = {
        "drums": {"style_sound_id": world["kit_id"], "mode": "percussive"},
        "bass": {"style_sound_id": world["synth_id"]},
        "vocals": {"volume": 0.5},
        # The pad chords: one grain voice per note (dsp/polyphony.py) on both paths.
        "other": {"style_sound_id": world["synth_id"]},
    }
    api_audio, _ = render_through_api(
        world, {"config": config, "settings": {**settings, "output_format": "flac"}}
    )
    cli_audio = render_through_cli(
        world,
        tmp_path / "mix.flac",
        [
            "--mode",
            "drums=percussive",
            "--volume",
            "vocals=0.5",
            "--style",
            f"other={world['synth']}",
            *flags,
        ],
    )
    assert api_audio.shape == cli_audio.shape == (3 * SR, 2)
    np.testing.assert_array_equal(api_audio, cli_audio)
    # And the styles were applied: the same mix without them differs.
    plain = render_through_cli(world, tmp_path / "plain.flac", ["--style", "drums=" + str(world["kit"])])
    assert not np.array_equal(plain, cli_audio)


def test_the_grain_and_the_seed_reach_the_engine(world: dict[str, Any]) -> None:
    from audiomixer.store import blobs, keys

    # The kit's hits differ; the synth is one steady tone, whose phase-aligned grains are all alike.
    config = {
        "bass": {"style_sound_id": world["synth_id"], "mode": "tonal"},
        "drums": {"style_sound_id": world["kit_id"]},
    }
    base, _ = render_through_api(world, {"config": config, "settings": {"grain_duration_ms": 40}})
    again, _ = render_through_api(world, {"config": config, "settings": {"grain_duration_ms": 40}})
    np.testing.assert_array_equal(base, again)  # reproducible: the seed is fixed by default
    other_grain, _ = render_through_api(world, {"config": config, "settings": {"grain_duration_ms": 300}})
    other_seed, _ = render_through_api(
        world, {"config": config, "settings": {"grain_duration_ms": 40, "seed": 9}}
    )
    assert not np.array_equal(base, other_grain)
    assert not np.array_equal(base, other_seed)
    # Each grain's table is cut once and kept beside the sound, under the prefix deleted with it.
    table_key = keys.sound_grain_table(world["tenant"], world["synth_id"], 40)
    assert table_key.startswith(keys.sound_prefix(world["tenant"], world["synth_id"]))
    assert json.loads(blobs.read(s3(), bucket(), table_key))["grain_ms"] == 40


# --- a render that cannot succeed ------------------------------------------------------------------------
def render_poller(stack: Any) -> Any:
    return next(p for p in stack.pollers if p.queue.logical_id == "RenderQueue")


def depth(stack: Any, logical_id: str) -> int:
    import boto3

    sqs = boto3.client("sqs", endpoint_url=stack.endpoint_url, region_name="us-east-1")
    attrs = sqs.get_queue_attributes(
        QueueUrl=stack.res.queues[logical_id].url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def fails_at_once(
    stack: Any,
    world: dict[str, Any],
    project_id: str,
    config: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, Any]:
    """Mix; the mix must end `failed` from one delivery: one render call, no error for the queue to retry."""
    from audiomixer.pipeline import render as render_stage

    calls: list[str] = []
    real = render_stage.render

    def counted(message: Any, **kwargs: Any) -> str:
        result = real(message, **kwargs)
        calls.append(result)
        return result

    monkeypatch.setattr(render_stage, "render", counted)
    errors_before = render_poller(stack).stats.as_dict()["errors"]
    started = time.monotonic()
    response = world["client"].post("/api/v1/mix", json={"project_id": project_id, "config": config})
    assert response.status_code == 202, response.text
    mix = world["client"].wait(f"/api/v1/mix/{response.json()['mix_id']}", 60)
    assert mix["status"] == "failed", mix
    assert time.monotonic() - started < 60
    assert calls == ["failed"]
    assert render_poller(stack).stats.as_dict()["errors"] == errors_before  # nothing left to retry
    assert depth(stack, "RenderQueue") == depth(stack, "RenderDLQ") == 0
    return dict(mix)


def test_a_stored_analysis_that_cannot_be_read_fails_the_mix_at_once(
    local_stack: Any, world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from audiomixer.pipeline.audio_files import write_json
    from audiomixer.store import keys

    project = insert_ready_project(world["tenant"], seconds=1.0, name="bad analysis")
    write_json(
        s3(), bucket(), keys.stem_analysis(world["tenant"], project.project_id, "bass"), {"kind": "tonal"}
    )
    config = {"bass": {"style_sound_id": world["synth_id"]}}
    mix = fails_at_once(local_stack, world, project.project_id, config, monkeypatch)
    assert mix["error"].startswith("the analysis of the bass stem cannot be read ("), mix
    assert "upload the song again" in mix["error"]


def test_an_engine_crash_fails_the_mix_at_once_with_the_reason(
    local_stack: Any, world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The crash seen on real songs (cKDTree on a NaN from log2 of a zero f0), injected at the engine's
    entry so that this test holds whatever the engine fixes: the stage must not retry what will recur."""
    from audiomixer.dsp import render as engine

    def crashes(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("'x' must be finite, check for nan or inf values")

    monkeypatch.setattr(engine, "render_stem", crashes)
    project = insert_ready_project(world["tenant"], seconds=1.0, name="engine crash")
    config = {"bass": {"style_sound_id": world["synth_id"]}}
    mix = fails_at_once(local_stack, world, project.project_id, config, monkeypatch)
    assert mix["error"] == (
        "re-rendering the bass stem failed (ValueError: 'x' must be finite, check for nan or inf values); "
        "try another style sound or other settings"
    ), mix
