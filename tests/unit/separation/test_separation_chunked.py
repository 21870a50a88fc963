"""Chunked separation: equal to Demucs in one go, seamless, stems summing exactly to the input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from demucs.hdemucs import HDemucs

from audiomixer.separation.chunked import (
    FULL_SCALE,
    PCM_MAX,
    PCM_MIN,
    apply_model_whole,
    fix_residual,
    make_grid,
    quantise,
    separate_to_files,
)
from audiomixer.separation.model import SeparationError, load_model
from audiomixer.settings import STEMS

SR = 44_100


def synth_song(seconds: float, seed: int = 0, level: float = 0.3) -> np.ndarray:
    """Stereo 'music': kick-like noise bursts, a bass line, a melody; quantised to 24 bits."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    drums = np.zeros(n)
    for start in range(0, n, SR // 2):
        burst = rng.standard_normal(min(4000, n - start)) * np.exp(-np.arange(min(4000, n - start)) / 600)
        drums[start : start + burst.size] += burst
    bass = np.sin(2 * np.pi * 55 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * t))
    melody = np.sign(np.sin(2 * np.pi * 440 * (1 + 0.25 * np.round(np.sin(2 * np.pi * 0.7 * t))) * t))
    left = 0.4 * drums + 0.5 * bass + 0.2 * melody
    right = 0.4 * drums + 0.5 * bass - 0.15 * melody
    x = np.stack([left, right], axis=1)
    x = level * x / np.abs(x).max()
    return quantise(x)[0].astype(np.float64) / FULL_SCALE


def write_flac(path: Path, x: np.ndarray, sr: int = SR) -> Path:
    sf.write(str(path), x, sr, subtype="PCM_24")
    return path


def read_stems(paths: dict[str, Path]) -> dict[str, np.ndarray]:
    return {stem: sf.read(str(p), dtype="float64", always_2d=True)[0] for stem, p in paths.items()}


@pytest.fixture(scope="module")
def permuted_model() -> HDemucs:
    # Sources in another order than the official models, so the name mapping is exercised.
    torch.manual_seed(1)
    model = HDemucs(channels=4, sources=["vocals", "other", "bass", "drums"])
    model.eval()
    return model


def test_chunked_equals_one_go_and_has_no_seams(tmp_path: Path, permuted_model: HDemucs) -> None:
    # demucs_unittest-sized models cost ~1 s per call whatever the length: few, long segments.
    x = synth_song(4.2)
    src = write_flac(tmp_path / "in.flac", x)
    result = separate_to_files(
        src,
        tmp_path / "out",
        model=permuted_model,
        model_name="perm",
        chunk_s=1.5,
        overlap_s=0.25,
        segment=2.0,
    )
    assert result.chunks == 3
    got = read_stems(result.paths)
    ref = apply_model_whole(permuted_model, x.astype(np.float32), segment=2.0)
    grid, _ = make_grid(permuted_model, len(x), chunk_s=1.5, overlap_s=0.25, segment=2.0)
    seams = [grid.final_until(k) for k in range(grid.n_chunks - 1)]
    for stem in ("drums", "bass", "vocals"):
        want = ref[permuted_model.sources.index(stem)]
        err = np.abs(got[stem] - want)
        print(f"{stem}: max |chunked - one go| = {err.max():.3g} (peak {np.abs(want).max():.3g})")
        # Two 24-bit roundings plus float32 noise: far below anything audible, and no worse at seams.
        assert err.max() < 4 / FULL_SCALE + 1e-6
        for seam in seams:
            step = np.abs(np.diff(got[stem][seam - 64 : seam + 64], axis=0)).max()
            ref_step = np.abs(np.diff(want[seam - 64 : seam + 64], axis=0)).max()
            assert step <= ref_step + 4 / FULL_SCALE


def test_stems_sum_exactly_to_the_input(tmp_path: Path) -> None:
    model = load_model("demucs_unittest")
    x = synth_song(2.2, seed=3)
    src = write_flac(tmp_path / "in.flac", x)
    result = separate_to_files(
        src,
        tmp_path / "out",
        model=model,
        model_name="demucs_unittest",
        chunk_s=0.75,
        overlap_s=0.1,
        segment=1.0,
    )
    assert result.chunks == 3
    stems = read_stems(result.paths)
    assert set(stems) == set(STEMS)
    total = sum(stems.values())
    err = np.abs(total - x).max()
    print(f"max |sum(stems) - input| = {err:.3g} over {result.frames} frames")
    assert err <= 1e-12
    assert all(s.shape == x.shape for s in stems.values())
    assert np.abs(stems["drums"]).max() > 0  # the model did produce something


def test_loud_input_stays_in_range_and_sums(tmp_path: Path, permuted_model: HDemucs) -> None:
    # Near full scale with square waves: the random model's stems overshoot, exercising clip + fixups.
    n = SR * 2
    t = np.arange(n) / SR
    x = np.stack([np.sign(np.sin(2 * np.pi * 3 * t)), -np.sign(np.sin(2 * np.pi * 5 * t))], axis=1)
    x = quantise(0.999 * x)[0] / FULL_SCALE
    src = write_flac(tmp_path / "in.flac", x)
    result = separate_to_files(
        src, tmp_path / "out", model=permuted_model, model_name="p", chunk_s=0.75, overlap_s=0.1, segment=1.0
    )
    stems = {s: sf.read(str(p), dtype="int32", always_2d=True)[0] >> 8 for s, p in result.paths.items()}
    total = sum(s.astype(np.int64) for s in stems.values())
    want = np.rint(x * FULL_SCALE).astype(np.int64)
    print(f"clipped {result.clipped_samples}, residual fixups {result.residual_fixups}")
    assert np.array_equal(total, want)


def test_fix_residual_moves_overflow_into_headroom() -> None:
    mix = np.array([PCM_MAX, PCM_MIN, 0, 1000], dtype=np.int64)
    parts = [
        np.array([PCM_MIN, PCM_MAX, PCM_MAX, 0], dtype=np.int64),
        np.array([PCM_MIN, PCM_MAX, PCM_MAX, 0], dtype=np.int64),
        np.array([0, 0, PCM_MAX, 0], dtype=np.int64),
    ]
    other, fixups = fix_residual(mix, parts)
    assert fixups == 3
    assert np.array_equal(other + sum(parts), mix)
    for arr in (*parts, other):
        assert arr.min() >= PCM_MIN and arr.max() <= PCM_MAX


def test_mono_48k_input_is_conformed(tmp_path: Path) -> None:
    model = load_model("demucs_unittest")
    t = np.arange(int(1.5 * 48_000)) / 48_000
    mono = 0.3 * np.sin(2 * np.pi * 110 * t) + 0.1 * np.sign(np.sin(2 * np.pi * 2 * t))
    src = tmp_path / "in.wav"
    sf.write(str(src), mono, 48_000, subtype="FLOAT")
    result = separate_to_files(src, tmp_path / "out", model=model, model_name="u")
    stems = read_stems(result.paths)
    for stem in STEMS:
        info = sf.info(str(result.paths[stem]))
        assert (info.samplerate, info.channels) == (SR, 2)
    assert abs(result.frames - int(1.5 * SR)) <= 1
    total = np.sum([stems[s] for s in STEMS], axis=0)
    assert np.array_equal(total[:, 0], total[:, 1])  # a duplicated mono source, summed back exactly
    assert np.abs(total).max() > 0.3


def test_grid_covers_song_without_gaps() -> None:
    model = load_model("demucs_unittest")
    for frames in (1, 1000, SR, int(7.77 * SR)):
        grid, overlap = make_grid(model, frames, chunk_s=2.0, overlap_s=0.25, segment=1.0)
        assert overlap == 0.25
        pos = 0
        for k in range(grid.n_chunks):
            start, end = grid.span(k)
            assert start == pos  # each chunk starts where the previous one's finished frames end
            pos = grid.final_until(k)
            assert start < pos <= end
            lo, hi = grid.window(k)
            assert lo <= start and hi >= end
        assert pos == frames
        w = grid.weight()
        total = grid.total_weight(0, frames, w)
        assert total.min() > 0


def test_grid_rejects_bad_parameters() -> None:
    model = load_model("demucs_unittest")
    with pytest.raises(SeparationError):
        make_grid(model, SR, chunk_s=0, overlap_s=1, segment=None)
    # A large overlap request raises Demucs' overlap fraction (more context at every boundary).
    _, overlap = make_grid(model, SR * 10, chunk_s=2, overlap_s=0.5, segment=1.0)
    assert overlap == 0.5


def test_progress_messages_say_which_chunk_and_the_time_left() -> None:
    from audiomixer.separation.chunked import _ChunkClock, progress_message, time_left_text

    assert progress_message(1, 7, 125.0) == "separating chunk 3 of 7, about 2 min left"
    assert progress_message(0, 7, None) == "separating chunk 2 of 7"  # nothing timed yet (all resumed)
    assert progress_message(6, 7, 0.0) == "separated chunk 7 of 7"
    assert [time_left_text(s) for s in (3, 44, 89, 90, 150, 600)] == [
        "a few seconds left",
        "about 40 s left",
        "about 90 s left",
        "about 2 min left",
        "about 2 min left",
        "about 10 min left",
    ]
    clock = _ChunkClock(7)
    assert clock.left_s(1) is None
    clock.computed(20.0)
    clock.computed(30.0)  # 25 s a chunk, measured
    assert clock.left_s(2) == 125.0  # five chunks still to compute
