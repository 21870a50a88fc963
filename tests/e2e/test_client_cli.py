"""The Python client and the `audiomixer upload|styles|mix|watch|download` commands against
`audiomixer dev`: uploads by size (multipart or presigned, unseen by the user), WebSocket progress,
mixing with style sounds, downloads, and errors as one readable line."""

from __future__ import annotations

import dataclasses
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from audio_helpers import synth_song, synth_style
from conftest import ROOT, Stack

from audiomixer_tools.client import MULTIPART_LIMIT_BYTES, ApiError, Client, Event

pytestmark = pytest.mark.slow

LARGE_WAV_BYTES = 60 * 1024 * 1024


@pytest.fixture(scope="module")
def stack(stack: Stack) -> Stack:
    """The session's stack with a tenant of this module's own: an identical upload by the same tenant
    reuses earlier stems, which would skip the stages these tests (and others) watch."""
    return dataclasses.replace(stack, key=stack.new_key("client-cli"))


def _cli(
    stack: Stack, *args: str, token: str | None = None, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDIOMIXER_")}
    env.update({"AUDIOMIXER_URL": stack.api, "AUDIOMIXER_TOKEN": stack.key if token is None else token})
    return subprocess.run(
        [sys.executable, "-m", "audiomixer_tools.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _large_wav(path: Path, size_bytes: int) -> None:
    """The test song tiled to `size_bytes` as a 32-bit float stereo WAV (fewer seconds per byte)."""
    song, sample_rate = sf.read(io.BytesIO(synth_song()), dtype="float32")
    frames = (size_bytes - 80) // (4 * 2)
    tiled = np.resize(song, (frames, 2))
    sf.write(path, tiled, sample_rate, subtype="FLOAT", format="WAV")


def test_cli_upload_of_a_large_wav_reaches_ready(stack: Stack, tmp_path: Path) -> None:
    song = tmp_path / "long song.wav"
    _large_wav(song, LARGE_WAV_BYTES)
    assert song.stat().st_size > MULTIPART_LIMIT_BYTES * 10
    done = _cli(stack, "upload", str(song), "--name", "sixty megabytes")
    assert done.returncode == 0, done.stderr
    # The user sees the new project's id and progress, never the presigned form.
    (project_id,) = done.stdout.split()
    assert "presign" not in done.stderr.lower() and "x-amz" not in done.stderr.lower()
    assert "upload " in done.stderr and "ready" in done.stderr.splitlines()[-1]
    with Client(stack.api, stack.key) as client:
        project = client.project(project_id)
        assert project.status == "ready" and project.name == "sixty megabytes"
        assert project.duration_s == pytest.approx(sf.info(str(song)).duration, abs=0.01)
        assert set(project.stem_urls) == {"drums", "bass", "vocals", "other"}
        client.delete_project(project_id)


def test_client_song_style_mix_download(stack: Stack, tmp_path: Path) -> None:
    song = tmp_path / "small song.wav"
    song.write_bytes(synth_song())
    style = tmp_path / "pluck.flac"
    style.write_bytes(synth_style())
    sent: list[tuple[int, int]] = []
    events: list[Event] = []
    with Client.from_env(stack.api, stack.key) as client:
        project_id = client.upload_song(song, "small", on_progress=lambda a, b: sent.append((a, b)))
        assert sent and sent[-1] == (song.stat().st_size, song.stat().st_size)
        final = client.wait("project", project_id, on_event=events.append, timeout_s=300)
        assert final.status == "ready" and final.progress == 100
        statuses = [e.status for e in events]
        assert statuses[-1] == "ready" and len(statuses) >= 2, statuses
        (sound_id,) = client.add_styles([style])
        assert client.wait("sound", sound_id, timeout_s=120).status == "ready"

    # The CLI on the client: mix with a sound id, follow it, download it.
    mixed = tmp_path / "mix.wav"
    done = _cli(
        stack,
        "mix",
        project_id,
        "--style",
        f"drums={sound_id}",
        "--mode",
        "drums=percussive",
        "-o",
        str(mixed),
    )
    assert done.returncode == 0, done.stderr
    (mix_id,) = done.stdout.split()
    audio, sample_rate = sf.read(mixed)
    assert sample_rate == 44100 and audio.shape == (6 * 44100, 2)
    assert float(np.abs(audio).max()) > 0.01

    # A stem this (four-stem) project does not have: the API's 422, as one line.
    lacking = _cli(stack, "mix", project_id, "--style", f"guitar={sound_id}")
    assert lacking.returncode == 1 and "guitar" in lacking.stderr and "Traceback" not in lacking.stderr
    print(f"[e2e] {lacking.stderr.strip()}")

    watched = _cli(stack, "watch", mix_id)
    assert watched.returncode == 0 and watched.stdout.strip() == f"mix {mix_id} completed", watched.stderr
    again = tmp_path / "again.wav"
    fetched = _cli(stack, "download", mix_id, "-o", str(again))
    assert fetched.returncode == 0, fetched.stderr
    assert again.read_bytes() == mixed.read_bytes()

    # A style sound given as a file is added to the library first; another format comes back.
    flac = tmp_path / "mix.flac"
    done = _cli(
        stack,
        "mix",
        project_id,
        "--style",
        f"bass={style}",
        "--format",
        "flac",
        "--mute",
        "vocals",
        "-o",
        str(flac),
    )
    assert done.returncode == 0, done.stderr
    assert sf.info(str(flac)).format == "FLAC"


def test_cli_errors_are_one_line(stack: Stack, tmp_path: Path) -> None:
    missing = _cli(stack, "download", "0" * 32, "-o", str(tmp_path / "x.wav"))
    assert missing.returncode == 1
    assert missing.stderr.strip() == "error: mix not found"
    refused = _cli(stack, "watch", "0" * 32, token="am_wrong")
    assert refused.returncode == 1 and refused.stderr.strip() == "error: invalid API key"
    no_key = _cli(stack, "upload", str(tmp_path / "nothing.wav"), token="")
    assert no_key.returncode == 2 and "AUDIOMIXER_TOKEN" in no_key.stderr
    no_file = _cli(stack, "upload", str(tmp_path / "nothing.wav"))
    assert no_file.returncode == 2 and "nothing.wav" in no_file.stderr
    bad_style = _cli(stack, "mix", "0" * 32, "--style", "Kazoo!=x")
    assert bad_style.returncode == 2 and "not a stem name: Kazoo!" in bad_style.stderr
    for done in (missing, refused, no_key, no_file, bad_style):
        assert "Traceback" not in done.stderr


def test_client_failed_status_raises_with_the_reason(stack: Stack, tmp_path: Path) -> None:
    not_audio = tmp_path / "notes.wav"
    not_audio.write_bytes(b"these are not audio samples " * 100)
    with Client(stack.api, stack.key) as client:
        project_id = client.upload_song(not_audio)
        with pytest.raises(ApiError) as failed:
            client.wait("project", project_id, timeout_s=120)
        assert failed.value.message.startswith(f"project {project_id} failed: ")
        assert client.project(project_id).status == "failed"


def test_cli_upload_of_own_stems_over_the_multipart_limit(stack: Stack, tmp_path: Path) -> None:
    """Four 15 s stems (~10 MB together) go to storage through one presigned form each, unseen."""
    folder = tmp_path / "stems"
    folder.mkdir()
    sample_rate = 44100
    t = np.arange(15 * sample_rate) / sample_rate
    for i, stem in enumerate(("drums", "bass", "vocals", "other")):
        tone = 0.2 * np.sin(2 * np.pi * (110.0 * (i + 1)) * t)
        sf.write(folder / f"{stem}.wav", np.stack([tone, tone], axis=1), sample_rate, subtype="PCM_16")
    assert sum(p.stat().st_size for p in folder.iterdir()) > MULTIPART_LIMIT_BYTES
    done = _cli(stack, "upload", "--stems", str(folder), "--name", "own stems")
    assert done.returncode == 0, done.stderr
    (project_id,) = done.stdout.split()
    with Client(stack.api, stack.key) as client:
        project = client.project(project_id)
        assert project.status == "ready" and project.source_kind == "stems", project
        assert set(project.stem_urls) == {"drums", "bass", "vocals", "other"}
        client.delete_project(project_id)
