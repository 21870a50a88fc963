"""`audiomixer dev` keeps your work: a ready project, its stems and mixes, the library and the keys are
there after a restart; a job running when it stopped ends `failed` with a reason, never stuck; `--fresh`
starts empty."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from audio_helpers import synth_song, synth_style
from conftest import running_dev

from audiomixer_tools.client import ApiError, Client

pytestmark = pytest.mark.slow


@dataclass
class Dev:
    api: str
    key: str
    process: subprocess.Popen[bytes]
    log: Path


def _has_dev_key(state: dict[str, Any]) -> bool:
    return bool(state.get("dev_api_key"))


@contextmanager
def dev(data_dir: Path, *extra: str) -> Iterator[Dev]:
    """One run of `audiomixer dev` on `data_dir`, stopped with Ctrl-C (SIGINT) as a user would."""
    log_path = data_dir / f"dev-{time.monotonic_ns()}.log"
    with running_dev(data_dir, log_path, *extra, ready=_has_dev_key, stop_timeout_s=60) as (
        process,
        api,
        _,
        state,
    ):
        yield Dev(api, state["dev_api_key"], process, log_path)


def test_restart_keeps_projects_mixes_library_and_keys(tmp_path: Path) -> None:
    song = tmp_path / "kept.wav"
    song.write_bytes(synth_song())
    long_song = tmp_path / "long.wav"
    long_song.write_bytes(synth_song(seconds=40.0))
    style = tmp_path / "kept-style.flac"
    style.write_bytes(synth_style())
    data_dir = tmp_path / "data"
    data_dir.mkdir()

    with dev(data_dir) as first, Client(first.api, first.key) as client:
        key = first.key
        project_id = client.upload_song(song, "kept")
        client.wait("project", project_id, timeout_s=300)
        (sound_id,) = client.add_styles([style])
        client.wait("sound", sound_id, timeout_s=120)
        mix_id = client.mix(project_id, styles={"drums": sound_id})
        client.wait("mix", mix_id, timeout_s=300)
        mix_before = client.download_mix(mix_id, tmp_path / "before.wav").read_bytes()
        stem_before = client.download_stem(project_id, "bass", tmp_path / "bass-before.flac").read_bytes()
        # A second job still running when the service stops (a longer song: separation takes a while).
        running_id = client.upload_song(long_song, "interrupted")
        for event in client.events("project", running_id, timeout_s=300):
            if event.status != "queued":
                break
        assert client.project(running_id).status == "separating"

    with dev(data_dir) as second, Client(second.api, key) as client:  # the first run's key still works
        assert "restored" in second.log.read_text()
        project = client.project(project_id)
        assert project.status == "ready" and project.name == "kept" and project.analysis
        assert (
            client.download_stem(project_id, "bass", tmp_path / "bass-after.flac").read_bytes() == stem_before
        )
        assert client.sound(sound_id).status == "ready"
        assert client.mix_status(mix_id).status == "completed"
        assert client.download_mix(mix_id, tmp_path / "after.wav").read_bytes() == mix_before
        # The interrupted job is not left waiting: it ended failed, saying what to do (stopping the stack
        # stops its Batch job, whose failure is recorded; a row still mid-stage on restart is ended too).
        interrupted = client.project(running_id)
        assert interrupted.status == "failed", interrupted
        print(f"\n[e2e] interrupted job: {interrupted.error}")
        assert interrupted.error and "again" in interrupted.error
        # The restored project can be mixed again.
        again = client.mix(project_id, styles={"bass": sound_id})
        assert client.wait("mix", again, timeout_s=300).status == "completed"

    with dev(data_dir, "--fresh") as third, Client(third.api, third.key) as client:
        assert client.projects().items == []
        with pytest.raises(ApiError) as refused:
            Client(third.api, key).projects()
        assert refused.value.status == 401
