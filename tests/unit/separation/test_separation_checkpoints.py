"""Checkpoint stores and resuming a killed separation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
import soundfile as sf
from moto import mock_aws

from audiomixer.separation import chunked
from audiomixer.separation.checkpoints import (
    LocalCheckpointStore,
    S3CheckpointStore,
    decode_stems,
    encode_stems,
)
from audiomixer.separation.chunked import FULL_SCALE, PCM_MAX, PCM_MIN, quantise, separate_to_files
from audiomixer.separation.model import load_model

SR = 44_100


class Killed(Exception):
    pass


def song(seconds: float) -> np.ndarray:
    rng = np.random.default_rng(7)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    x = np.stack([np.sin(2 * np.pi * 98 * t), np.sin(2 * np.pi * 147 * t)], axis=1) * 0.3
    x += 0.05 * rng.standard_normal((n, 2)) * (np.sin(2 * np.pi * 2 * t)[:, None] > 0.9)
    return quantise(x)[0] / FULL_SCALE


def random_stems(frames: int = 1000) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        name: rng.integers(PCM_MIN, PCM_MAX + 1, size=(frames, 2), dtype=np.int64).astype(np.int32)
        for name in ("drums", "bass", "vocals")
    }


def test_encode_decode_is_lossless_and_compact() -> None:
    stems = random_stems()
    stems["drums"][:3] = [[PCM_MIN, PCM_MAX], [0, -1], [1, 0]]
    payload = encode_stems(stems)
    back = decode_stems(payload)
    assert list(back) == list(stems)
    for name in stems:
        assert np.array_equal(back[name], stems[name])
    # Real audio compresses well below raw 24-bit PCM (3 bytes/sample).
    t = np.arange(SR) / SR
    tone = quantise(np.stack([0.5 * np.sin(2 * np.pi * 220 * t)] * 2, axis=1))[0]
    assert len(encode_stems({"drums": tone})) < 0.6 * tone.size * 3
    with pytest.raises(ValueError):
        decode_stems(b"garbage")


def test_local_store(tmp_path: Path) -> None:
    store = LocalCheckpointStore(tmp_path / "ck")
    assert store.load(0) is None and store.read_manifest() is None
    stems = random_stems()
    store.save(3, stems)
    store.write_manifest({"a": 1})
    loaded = store.load(3)
    assert loaded is not None and np.array_equal(loaded["bass"], stems["bass"])
    assert store.read_manifest() == {"a": 1}
    assert store.chunk_indices() == [3]
    (tmp_path / "ck" / "chunk-00004.bin").write_bytes(b"half a chunk")
    assert store.load(4) is None  # unreadable -> recompute, never crash
    store.clear()
    assert not (tmp_path / "ck").exists()


def test_s3_store() -> None:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="ckpt-bucket")
        s3.put_object(Bucket="ckpt-bucket", Key="t/p/checkpoints-neighbour/x", Body=b"keep me")
        store = S3CheckpointStore(s3, "ckpt-bucket", "t/p/checkpoints/")
        assert store.load(0) is None and store.read_manifest() is None
        stems = random_stems()
        for k in range(3):
            store.save(k, stems)
        store.write_manifest({"model": "m"})
        loaded = store.load(1)
        assert loaded is not None and np.array_equal(loaded["vocals"], stems["vocals"])
        assert store.read_manifest() == {"model": "m"}
        assert len(store.keys()) == 4
        store.clear()
        assert store.keys() == []
        # Only our prefix is cleared, not a sibling that shares its first characters.
        assert (
            s3.get_object(Bucket="ckpt-bucket", Key="t/p/checkpoints-neighbour/x")["Body"].read()
            == b"keep me"
        )


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = chunked.apply_model

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(chunked, "apply_model", counted)
    return calls


def test_killed_run_resumes_from_last_finished_chunk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = load_model("demucs_unittest")
    x = song(2.9)
    src = tmp_path / "in.flac"
    sf.write(str(src), x, SR, subtype="PCM_24")
    params: dict[str, Any] = {
        "model": model,
        "model_name": "demucs_unittest",
        "chunk_s": 0.75,
        "overlap_s": 0.25,
        "segment": 1.0,
    }
    calls = _counting(monkeypatch)

    straight = separate_to_files(src, tmp_path / "straight", **params)
    segments_per_chunk = [len(straight_grid_offsets) for straight_grid_offsets in _offsets(model, len(x))]
    assert straight.chunks >= 3 and len(calls) == sum(segments_per_chunk)

    store = LocalCheckpointStore(tmp_path / "ck")

    def kill_after_first_chunk(percent: int, message: str) -> None:
        raise Killed(message)

    calls.clear()
    with pytest.raises(Killed):
        separate_to_files(src, tmp_path / "run1", store=store, on_progress=kill_after_first_chunk, **params)
    assert store.chunk_indices() == [0]

    calls.clear()
    progress: list[int] = []
    resumed = separate_to_files(
        src, tmp_path / "run2", store=store, on_progress=lambda p, m: progress.append(p), **params
    )
    assert resumed.resumed_chunks == 1 and resumed.computed_chunks == straight.chunks - 1
    assert len(calls) == sum(segments_per_chunk[1:])  # the model never saw chunk 0 again
    assert progress == sorted(progress) and progress[-1] == 100
    for stem, path in straight.paths.items():
        a = sf.read(str(path), dtype="int32")[0]
        b = sf.read(str(resumed.paths[stem]), dtype="int32")[0]
        assert np.array_equal(a, b), stem

    # Checkpoints of another configuration (here: another source) are ignored and cleared.
    store.save(0, random_stems(5))
    short = tmp_path / "short.flac"
    sf.write(str(short), x[: SR // 2], SR, subtype="PCM_24")
    other = separate_to_files(short, tmp_path / "run3", store=store, **params)
    assert other.resumed_chunks == 0 and other.computed_chunks == other.chunks == 1
    assert store.read_manifest() == other.manifest and store.chunk_indices() == [0]


def _offsets(model: Any, frames: int) -> list[range]:
    grid, _ = chunked.make_grid(model, frames, chunk_s=0.75, overlap_s=0.25, segment=1.0)
    return [grid.offsets(k) for k in range(grid.n_chunks)]
