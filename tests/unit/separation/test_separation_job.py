"""The Batch job core through moto S3: stems, exact sums, resume, idempotency, no leftovers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from separation_source import BUCKET, SOURCE, SR, s3_with_source, song

from audiomixer.separation import chunked, job
from audiomixer.separation.job import run_separation_job, separate_file
from audiomixer.separation.model import ModelUnavailableError
from audiomixer.settings import STEMS

STEMS_PREFIX = "t1/projects/p1/stems"
CKPT = "t1/projects/p1/checkpoints"


class Killed(Exception):
    pass


@pytest.fixture
def s3(tmp_path: Path) -> Any:
    yield from s3_with_source(tmp_path)


def _run(s3: Any, tmp_path: Path, **kw: Any) -> dict[str, str]:
    args: dict[str, Any] = {
        "s3": s3,
        "bucket": BUCKET,
        "source_key": SOURCE,
        "stems_prefix": STEMS_PREFIX,
        "checkpoint_prefix": CKPT,
        "model_name": "demucs_unittest",
        "repo": None,
        "chunk_s": 0.75,
        "overlap_s": 0.25,
        "segment": 1.0,
        "work_dir": tmp_path,
    }
    args.update(kw)
    return run_separation_job(**args)


def _keys(s3: Any, prefix: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])]


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = chunked.apply_model

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(chunked, "apply_model", counted)
    return calls


def test_job_writes_stems_that_sum_to_source_and_cleans_up(
    s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _counting(monkeypatch)
    progress: list[tuple[int, str]] = []

    def kill_after_first_chunk(percent: int, message: str) -> None:
        progress.append((percent, message))
        if message.startswith("separating chunk 2 of"):
            raise Killed(message)

    with pytest.raises(Killed):
        _run(s3, tmp_path, on_progress=kill_after_first_chunk)
    assert any(k.endswith("chunk-00000.bin") for k in _keys(s3, CKPT))
    first_attempt = len(calls)

    calls.clear()
    progress.clear()
    monkeypatch.setenv("AWS_BATCH_JOB_ATTEMPT", "2")
    keys = _run(s3, tmp_path, on_progress=lambda p, m: progress.append((p, m)))
    assert keys == {stem: f"{STEMS_PREFIX}/{stem}.flac" for stem in STEMS}
    grid, _ = chunked.make_grid(
        job.load_model("demucs_unittest"), len(song()), chunk_s=0.75, overlap_s=0.25, segment=1.0
    )
    assert grid.n_chunks >= 3 and grid.per_chunk == 1
    assert first_attempt == 2  # chunk 0 finished, chunk 1 computed when the kill came
    assert len(calls) == grid.n_chunks - 1  # chunk 0 was not recomputed
    percents = [p for p, _ in progress]
    assert percents == sorted(percents) and percents[0] == 0 and percents[-1] == 100

    source = song()
    stems = {}
    for stem, key in keys.items():
        path = tmp_path / f"{stem}.flac"
        s3.download_file(BUCKET, key, str(path))
        info = sf.info(str(path))
        assert (info.samplerate, info.channels, info.subtype) == (SR, 2, "PCM_24")
        stems[stem] = sf.read(str(path), dtype="float64", always_2d=True)[0]
    err = np.abs(np.sum(list(stems.values()), axis=0) - source).max()
    print(f"job: max |sum(stems) - source| = {err:.3g}")
    assert err <= 1e-12
    assert _keys(s3, CKPT) == []  # no orphaned checkpoints
    assert not list(tmp_path.glob("separation-*"))  # temp files gone too


def test_job_is_idempotent(s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _run(s3, tmp_path)
    before = {k: s3.head_object(Bucket=BUCKET, Key=k)["ETag"] for k in _keys(s3, STEMS_PREFIX)}
    # A leftover checkpoint (attempt died after uploading, before cleaning) is removed on the rerun.
    s3.put_object(Bucket=BUCKET, Key=f"{CKPT}/chunk-00000.bin", Body=b"x")

    def no_model(*a: Any, **k: Any) -> Any:
        raise AssertionError("model loaded although the stems exist")

    monkeypatch.setattr(job, "load_model", no_model)
    keys = _run(s3, tmp_path)
    assert set(keys.values()) == set(before)
    assert {k: s3.head_object(Bucket=BUCKET, Key=k)["ETag"] for k in _keys(s3, STEMS_PREFIX)} == before
    assert _keys(s3, CKPT) == []

    # A new source under the same key makes the stems stale: the job runs again.
    s3.put_object(Bucket=BUCKET, Key=SOURCE, Body=b"not the same bytes")
    with pytest.raises(AssertionError, match="model loaded"):
        _run(s3, tmp_path)


def test_missing_weights_fail_fast_before_download(
    s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(s3, "download_file", lambda *a, **k: pytest.fail("downloaded"))
    with pytest.raises(ModelUnavailableError, match="DEMUCS_REPO"):
        _run(s3, tmp_path, model_name="htdemucs_ft", repo=tmp_path / "no-such-repo")


def test_separate_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMUCS_MODEL", "demucs_unittest")
    from audiomixer.settings import get_settings

    get_settings.cache_clear()
    try:
        path = tmp_path / "song.wav"
        x = song(1.5)
        sf.write(str(path), x, SR, subtype="PCM_16")
        stems = separate_file(path)
    finally:
        get_settings.cache_clear()
    assert list(stems) == list(STEMS)
    for data in stems.values():
        assert data.dtype == np.float32 and data.shape == x.shape
    want = sf.read(str(path), dtype="float64")[0]  # the 16-bit source as read back
    assert np.abs(np.sum(list(stems.values()), axis=0, dtype=np.float64) - want).max() < 1e-6
