"""The measures of `audiomixer bench quality` on known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from audiomixer_tools.bench import quality_measures as Q

SR = 22050


def _truth() -> tuple[np.ndarray, np.ndarray]:
    times = np.arange(0.0, 4.0, 0.01)
    f0 = np.where(times < 2.0, 55.0, 82.41)
    f0[(times > 1.0) & (times < 1.5)] = 0.0  # a rest
    return times, f0


def test_onset_f1_known_answers() -> None:
    ref = np.arange(0.5, 10.0, 0.5)
    assert Q.onset_f1(ref, ref) == 1.0
    assert Q.onset_f1(ref, ref + 0.04) == 1.0  # inside +-50 ms
    assert Q.onset_f1(ref, ref + 0.07) == 0.0  # outside
    half = ref[::2]
    assert Q.onset_f1(ref, half) == pytest.approx(
        2 * 1.0 * (half.size / ref.size) / (1.0 + half.size / ref.size)
    )
    assert Q.onset_f1(np.array([]), np.array([])) == 1.0
    assert Q.onset_f1(ref, np.array([])) == 0.0


def test_pitch_scores_known_answers() -> None:
    times, f0 = _truth()
    assert Q.pitch_scores(times, f0, times, f0) == (1.0, 1.0)
    rpa, recall = Q.pitch_scores(times, f0, times, f0 * 2.0)  # an octave error
    assert (rpa, recall) == (0.0, 1.0)
    assert Q.pitch_scores(times, f0, times, f0 * 2 ** (40 / 1200))[0] == 1.0  # 40 cents is within 50
    assert Q.pitch_scores(times, f0, times, f0 * 2 ** (60 / 1200))[0] == 0.0
    # Half the voiced frames estimated unvoiced (0 Hz or NaN, as pyin gives): both measures halve.
    est = f0.copy()
    voiced = np.flatnonzero(f0 > 0)
    est[voiced[::2]] = np.nan
    rpa, recall = Q.pitch_scores(times, f0, times, est)
    assert rpa == pytest.approx(0.5, abs=0.01) and recall == pytest.approx(0.5, abs=0.01)
    # An estimate on another grid is resampled onto the truth's.
    est_times = np.arange(0.0, 4.0, 256 / SR)
    est_f0 = np.interp(est_times, times, f0)
    est_f0[np.interp(est_times, times, (f0 == 0).astype(float)) > 0] = 0.0
    assert Q.pitch_scores(times, f0, est_times, est_f0)[0] > 0.97


def test_pyin_track_finds_a_low_e() -> None:
    t = np.arange(int(2.0 * SR)) / SR
    tone = sum(np.sin(2 * np.pi * 41.2 * k * t) / k for k in range(1, 6)).astype(np.float32) * 0.3
    times, f0 = Q.pyin_track(tone, SR)
    ref_times = np.arange(0.2, 1.8, 0.01)
    rpa, recall = Q.pitch_scores(ref_times, np.full(ref_times.size, 41.2), times, f0)
    assert rpa > 0.9 and recall > 0.9


def test_librosa_onsets_find_clicks() -> None:
    x = np.zeros(3 * SR, np.float32)
    clicks = np.array([0.5, 1.0, 1.7, 2.4])
    for c in clicks:
        i = int(c * SR)
        x[i : i + 400] = np.exp(-np.arange(400) / 60.0) * np.sign(np.sin(np.arange(400)))
    assert Q.onset_f1(clicks, Q.librosa_onsets(x, SR)) == 1.0


def test_true_peak_sees_the_peak_between_samples() -> None:
    # A sine at a quarter of the sample rate, sampled 45 degrees off its crests: every sample is at
    # 0.707 of the true amplitude, so a sample-peak meter reads -3 dB too low.
    n = np.arange(SR)
    fade = np.hanning(2000)  # no step at the ends: its ringing would be a true overshoot
    gain = np.concatenate([fade[:1000], np.ones(SR - 2000), fade[1000:]])
    x = (np.sin(np.pi / 2 * n + np.pi / 4) * gain).astype(np.float32)
    assert 20 * np.log10(np.abs(x).max()) == pytest.approx(-3.01, abs=0.01)
    assert Q.true_peak_dbtp(x) == pytest.approx(0.0, abs=0.05)
    stereo = np.stack([x * 0.5, x * 0.25], axis=1)
    assert Q.true_peak_dbtp(stereo) == pytest.approx(20 * np.log10(0.5), abs=0.05)
    # Blocks do not change the answer.
    assert Q.true_peak_dbtp(x, block=1000) == pytest.approx(Q.true_peak_dbtp(x), abs=1e-6)


def test_envelope_correlation_known_answers() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(4 * SR) / SR
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 1.5 * t)
    a = (rng.standard_normal(t.size) * env).astype(np.float32)
    b = (rng.standard_normal(t.size) * env).astype(np.float32)  # other noise, same envelope
    c = (rng.standard_normal(t.size) * (1.0 - env)).astype(np.float32)  # the opposite envelope
    assert Q.envelope_correlation(a, a, SR) == pytest.approx(1.0)
    assert Q.envelope_correlation(a, b, SR) > 0.95
    assert Q.envelope_correlation(a, c, SR) < -0.9


def test_mfcc_distance_ranks_timbres() -> None:
    t = np.arange(2 * SR) / SR
    dull = np.sin(2 * np.pi * 110 * t).astype(np.float32) * 0.3
    bright = sum(np.sin(2 * np.pi * 110 * k * t) / k for k in range(1, 30)).astype(np.float32) * 0.1
    brighter = (
        sum(np.sin(2 * np.pi * 110 * k * t) / np.sqrt(k) for k in range(1, 30)).astype(np.float32) * 0.05
    )
    assert Q.mfcc_distance(bright, bright, SR) == 0.0
    assert Q.mfcc_distance(bright * 0.1, bright, SR) < 1.0  # loudness (c0) is not timbre
    assert Q.mfcc_distance(brighter, bright, SR) < Q.mfcc_distance(dull, bright, SR)
    assert Q.mfcc_mean(bright, SR).shape == (13,)  # coefficients 1-13


def test_silence_kept_known_answers() -> None:
    t = np.arange(4 * SR) / SR
    source = (0.3 * np.sin(2 * np.pi * 220 * t) * (t < 2.0)).astype(np.float32)
    assert Q.silence_kept(source, source, SR) == 1.0
    hiss = source + np.float32(0.01) * np.sin(2 * np.pi * 3000 * t).astype(np.float32)  # -43 dBFS
    assert Q.silence_kept(source, hiss, SR) == 0.0
    quiet = source + np.float32(0.001) * np.sin(2 * np.pi * 3000 * t).astype(np.float32)  # -63 dBFS
    assert Q.silence_kept(source, quiet, SR) == 1.0
    # Half of the silent stretch filled: about half the silent frames lost.
    half = source.copy()
    half[(t >= 2.0) & (t < 3.0)] = 0.1
    assert Q.silence_kept(source, half, SR) == pytest.approx(0.5, abs=0.05)
    # One channel left on is not silence (here -46 dBFS: below -50 if the two channels were averaged).
    stereo = np.stack(
        [source, source + np.float32(0.007) * np.sin(2 * np.pi * 3000 * t).astype(np.float32)], axis=1
    )
    assert Q.silence_kept(np.stack([source, source], axis=1), stereo, SR) == 0.0
    assert math.isnan(Q.silence_kept(hiss + 0.1, hiss, SR))  # never silent: nothing to judge
