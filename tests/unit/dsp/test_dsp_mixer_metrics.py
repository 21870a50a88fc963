"""Mixer, true-peak limiter and the metrics themselves."""

from __future__ import annotations

import numpy as np
import pytest

from audiomixer.dsp.mixer import (
    integrated_loudness,
    limit_true_peak,
    mix_stems,
    true_peak_dbtp,
)
from audiomixer_tools import signals as S
from audiomixer_tools.metrics import (
    envelope_correlation,
    frame_rms_db,
    mfcc_distance,
    onset_f1,
    raw_pitch_accuracy,
    silence_check,
)

SR = 44100


def test_true_peak_sees_inter_sample_peaks() -> None:
    n = np.arange(SR)
    # fs/4 sine at 45 degrees: every sample is at 0.707 (-3 dBFS) while the waveform peaks at 1.0.
    x = np.sin(2 * np.pi * n / 4 + np.pi / 4).astype(np.float32)
    assert 20 * np.log10(np.abs(x).max()) == pytest.approx(-3.01, abs=0.01)
    assert true_peak_dbtp(x, SR) == pytest.approx(0.0, abs=0.15)
    low = (0.5 * np.sin(2 * np.pi * 100 * n / SR)).astype(np.float32)
    assert true_peak_dbtp(low, SR) == pytest.approx(20 * np.log10(0.5), abs=0.05)
    assert true_peak_dbtp(np.zeros(100, np.float32), SR) == float("-inf")


def test_limiter_holds_the_ceiling_and_leaves_quiet_audio_alone() -> None:
    n = np.arange(4 * SR)
    loud = (1.8 * np.sin(2 * np.pi * n / 4 + np.pi / 4) * (n > SR)).astype(np.float32)
    loud += (0.3 * np.sin(2 * np.pi * 220 * n / SR)).astype(np.float32)
    out = limit_true_peak(np.stack([loud, 0.5 * loud], 1), SR, -1.0)
    assert true_peak_dbtp(out, SR) <= -1.0
    quiet = (0.2 * np.sin(2 * np.pi * 220 * n / SR)).astype(np.float32)
    np.testing.assert_array_equal(limit_true_peak(quiet, SR, -1.0), quiet)
    # Gain reduction is local: the first second (quiet part) is barely touched.
    assert np.abs(out[: SR // 2, 0] - loud[: SR // 2]).max() < 1e-3


def test_mix_of_hot_stems_pads_lengths_and_respects_true_peak() -> None:
    stems, _ = S.synth_song(8.0, SR, seed=1)
    stems["vocals"] = stems["vocals"][: 5 * SR]  # shorter stem: padded with silence
    stems["bass"] = stems["bass"][:, 0]  # mono stem: spread to both channels
    mix = mix_stems(stems, {"drums": 2.0, "bass": 2.0, "vocals": 1.5}, SR)
    assert mix.shape == (8 * SR, 2) and mix.dtype == np.float32
    assert true_peak_dbtp(mix, SR) <= -1.0
    assert np.abs(mix[6 * SR :]).max() > 0.01


def test_volumes_scale_and_validate() -> None:
    stems, _ = S.synth_song(4.0, SR, seed=2)
    quiet = {k: v * 0.05 for k, v in stems.items()}
    a = mix_stems(quiet, {}, SR)
    b = mix_stems(quiet, {"drums": 0.0, "bass": 0.0, "vocals": 0.0}, SR)
    np.testing.assert_allclose(b, quiet["other"], atol=1e-6)  # under the ceiling: untouched
    np.testing.assert_allclose(a, sum(quiet.values()), atol=1e-6)
    for bad in (-0.1, 2.5):
        with pytest.raises(ValueError):
            mix_stems(stems, {"drums": bad}, SR)
    with pytest.raises(ValueError):
        mix_stems({}, {}, SR)


def test_loudness_target() -> None:
    stems, _ = S.synth_song(6.0, SR, seed=3)
    quiet = {k: v * 0.1 for k, v in stems.items()}
    mix = mix_stems(quiet, {}, SR, target_lufs=-20.0)
    assert integrated_loudness(mix, SR) == pytest.approx(-20.0, abs=0.5)
    assert true_peak_dbtp(mix, SR) <= -1.0


@pytest.mark.filterwarnings("ignore:Estimated melody has no voiced frames")
def test_metrics_behave() -> None:
    ref = np.arange(0.5, 5.0, 0.5)
    assert onset_f1(ref, ref + 0.02) == 1.0
    assert onset_f1(ref, ref + 0.08) == 0.0
    assert onset_f1(ref, ref[::2]) == pytest.approx(2 * 5 / (9 + 5), abs=1e-6)
    times = np.arange(0, 2, 0.01)
    f0 = np.full(times.size, 110.0)
    assert raw_pitch_accuracy(times, f0, times, f0 * 2 ** (30 / 1200)) == 1.0
    assert raw_pitch_accuracy(times, f0, times, f0 * 2 ** (70 / 1200)) == 0.0
    assert raw_pitch_accuracy(times, f0, times, np.zeros_like(f0)) == 0.0
    x, _ = S.drum_pattern(4.0, SR)
    y, _ = S.note_line(4.0, SR)
    assert envelope_correlation(x, x * 0.5, SR) == pytest.approx(1.0)
    assert envelope_correlation(x, y, SR) < 0.8
    assert mfcc_distance(x, x, SR) == pytest.approx(0.0, abs=1e-6)
    assert mfcc_distance(x, y, SR) > 10
    gap = np.concatenate([y[:SR], np.zeros(SR, np.float32), y[:SR]])
    loud = gap.copy()
    loud[SR : 2 * SR] = 0.01
    assert silence_check(gap, gap, SR).ok(-50.0)
    assert not silence_check(gap, loud, SR).ok(-50.0)
    assert frame_rms_db(np.full(SR, 0.5, np.float32), SR).mean() == pytest.approx(-6.02, abs=0.01)
