"""The sound of a render on known signals: robustness to bad f0, envelope-kept transposition, stereo
styles, clean (unclipped, true-peak safe) output by an independent meter, silence, bridged voicing."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.signal import butter, lfilter, resample_poly

from audiomixer.dsp.analysis import StemAnalysis, analyse_stem
from audiomixer.dsp.grains import analyse_style_sound
from audiomixer.dsp.granular import render_stem
from audiomixer.dsp.mixer import mix_stems
from audiomixer_tools import signals as S
from audiomixer_tools.metrics import mfcc_distance, raw_pitch_accuracy, silence_check

SR = 44100


def independent_true_peak_dbtp(x: np.ndarray, factor: int) -> float:
    """True peak by scipy's polyphase resampler (not the limiter's own filter)."""
    y = resample_poly(np.asarray(x, np.float64), factor, 1, axis=0)
    return float(20.0 * np.log10(max(float(np.max(np.abs(y))), 1e-12)))


def bright_bass(f0_hz: float, duration_s: float, sample_rate: int = SR) -> np.ndarray:
    """A bright synth bass: a band-limited sawtooth through a resonant 1.2-2.4 kHz band and a 3 kHz
    low-pass (its timbre is a spectral envelope, not a pitch)."""
    t = np.arange(round(duration_s * sample_rate)) / sample_rate
    phase = 2 * np.pi * f0_hz * t
    saw = sum(np.sin(k * phase) / k for k in range(1, int(0.45 * sample_rate / f0_hz)))
    b, a = butter(2, [1200 / (sample_rate / 2), 2400 / (sample_rate / 2)], btype="band")
    b2, a2 = butter(4, 3000 / (sample_rate / 2))
    y = lfilter(b2, a2, 0.3 * saw + 2.0 * lfilter(b, a, saw))
    S.fade_edges(y, int(0.01 * sample_rate))
    return (0.5 * y / np.abs(y).max()).astype(np.float32)


def f0_frames(x: np.ndarray, start_s: float, stop_s: float) -> np.ndarray:
    import librosa

    seg = np.asarray(x if x.ndim == 1 else x.mean(axis=1), np.float32)
    seg = seg[int(start_s * SR) : int(stop_s * SR)]
    return np.asarray(librosa.yin(seg, fmin=30.0, fmax=500.0, sr=SR, frame_length=4096))


def median_f0(x: np.ndarray, start_s: float, stop_s: float) -> float:
    return float(np.median(f0_frames(x, start_s, stop_s)))


@pytest.fixture(scope="module")
def bass_line() -> dict[str, object]:
    x, _ = S.note_line(6.0, SR, seed=3)
    tone = S.style_tone(SR, f0_hz=110.0, duration_s=2.0, timbre="square")
    return {"x": x, "a": analyse_stem(x, SR), "tone": tone, "table": analyse_style_sound(tone, SR)}


def test_zero_nan_or_infinite_f0_reads_as_unvoiced(bass_line: dict) -> None:
    x, a, tone, table = bass_line["x"], bass_line["a"], bass_line["tone"], bass_line["table"]
    voiced = np.nonzero(a.voiced_prob >= 0.5)[0]
    assert voiced.size > 50
    bad = voiced[::3]
    # The known answer: a voiced frame with an unusable f0 renders exactly as an unvoiced frame.
    as_unvoiced = dataclasses.replace(a, f0_hz=a.f0_hz.copy(), voiced_prob=a.voiced_prob.copy())
    as_unvoiced.f0_hz[bad] = 0.0
    as_unvoiced.voiced_prob[bad] = 0.0
    expected = render_stem(x, SR, as_unvoiced, tone, SR, table)
    for value in (0.0, np.nan, np.inf, -np.inf, -55.0):
        broken = dataclasses.replace(a, f0_hz=a.f0_hz.copy())
        broken.f0_hz[bad] = value
        out = render_stem(x, SR, broken, tone, SR, table)
        assert np.all(np.isfinite(out))
        np.testing.assert_array_equal(out, expected)
    nan_prob = dataclasses.replace(a, voiced_prob=a.voiced_prob.copy(), f0_hz=a.f0_hz.copy())
    nan_prob.voiced_prob[bad] = np.nan
    nan_prob.f0_hz[bad] = 0.0
    np.testing.assert_array_equal(render_stem(x, SR, nan_prob, tone, SR, table), expected)


def test_octave_down_keeps_the_bright_style_timbre() -> None:
    style = bright_bass(110.0, 3.0)
    # The stem: one long note an octave below the style.
    stem = bright_bass(55.0, 4.0) * 0.8
    a = analyse_stem(stem, SR)
    table = analyse_style_sound(style, SR)
    out = render_stem(stem, SR, a, style, SR, table)
    assert median_f0(out, 0.5, 3.5) == pytest.approx(55.0, rel=0.03)
    # Resampling read an octave down: the reference the envelope-kept transposition must beat 3x.
    resampled = np.interp(np.arange(0, style.size - 1, 0.5), np.arange(style.size), style)
    resampled_distance = mfcc_distance(resampled.astype(np.float32), style, SR)
    rendered_distance = mfcc_distance(out, style, SR)
    assert rendered_distance <= resampled_distance / 3.0, (rendered_distance, resampled_distance)


def test_stereo_style_gives_a_stereo_stem_with_its_image(bass_line: dict) -> None:
    x = bass_line["x"]
    mono_tone = S.style_tone(SR, f0_hz=110.0, duration_s=2.0, timbre="organ")
    # Panned left: the right channel is a quieter, slightly delayed copy.
    style = np.stack([mono_tone, 0.3 * np.roll(mono_tone, 40)], axis=1)
    table = analyse_style_sound(style, SR)
    stem = S.to_stereo(x, 0.0)
    for target in (stem, x):
        out = render_stem(target, SR, analyse_stem(target, SR), style, SR, table)
        assert out.shape == (x.size, 2)
        left, right = (float(np.sqrt(np.mean(out[:, c] ** 2))) for c in range(2))
        assert 0.2 <= right / left <= 0.45
        assert not np.allclose(out[:, 0] * (right / left), out[:, 1], atol=1e-3)
    # A mono style on a stereo stem keeps the stem's shape and pan.
    panned = S.to_stereo(x, -0.5)
    out = render_stem(panned, SR, analyse_stem(panned, SR), mono_tone, SR, analyse_style_sound(mono_tone, SR))
    assert out.shape == panned.shape
    assert np.sqrt(np.mean(out[:, 0] ** 2)) > 1.5 * np.sqrt(np.mean(out[:, 1] ** 2))
    # Drums too: a stereo kit stays stereo.
    drums, _ = S.drum_pattern(4.0, SR, kit=0, seed=5)
    kit = S.style_kit(SR, kit=1)
    kit2 = np.stack([kit, 0.5 * kit], axis=1)
    out = render_stem(drums, SR, analyse_stem(drums, SR), kit2, SR, analyse_style_sound(kit2, SR))
    assert out.shape == (drums.size, 2)
    ratio = np.sqrt(np.mean(out[:, 1] ** 2) / np.mean(out[:, 0] ** 2))
    assert ratio == pytest.approx(0.5, abs=0.05)


def test_hot_dense_stems_render_without_a_clipped_sample() -> None:
    drums, _ = S.drum_pattern(6.0, SR, kit=0, seed=9)
    hot = S.to_stereo(drums / np.abs(drums).max() * 0.999, 0.1)
    kit = S.style_kit(SR, kit=1) * 3.0  # a pack mastered past full scale
    # Short grains at every onset plus a long hit: overlapping grains sum past full scale unlimited.
    out = render_stem(hot, SR, analyse_stem(hot, SR), kit, SR, analyse_style_sound(kit, SR), grain_ms=400.0)
    assert float(np.max(np.abs(out))) < 1.0
    for factor in (4, 8):
        assert independent_true_peak_dbtp(out, factor) <= -1.0 + 0.05
    bass, _ = S.note_line(4.0, SR, seed=2, amplitude=0.99)
    loud_tone = S.style_tone(SR, f0_hz=110.0, duration_s=2.0, timbre="square", amplitude=1.0)
    out = render_stem(bass, SR, analyse_stem(bass, SR), loud_tone, SR, analyse_style_sound(loud_tone, SR))
    for factor in (4, 8):
        assert independent_true_peak_dbtp(out, factor) <= -1.0 + 0.05


def test_mix_true_peak_by_an_independent_meter() -> None:
    rng = np.random.default_rng(4)
    n = SR * 3
    t = np.arange(n) / SR
    # Near-Nyquist tones and square edges make inter-sample peaks far above the sample peak.
    stems = {
        "drums": S.to_stereo(np.sign(np.sin(2 * np.pi * 3 * t)).astype(np.float32) * 0.9, 0.0),
        "bass": np.stack([0.9 * np.sin(2 * np.pi * 11025 * t + 0.25 * np.pi)] * 2, 1).astype(np.float32),
        "other": (rng.standard_normal((n, 2)) * 0.3).astype(np.float32),
    }
    mix = mix_stems(stems, {}, SR)
    for factor in (4, 8):
        assert independent_true_peak_dbtp(mix, factor) <= -1.0
    assert independent_true_peak_dbtp(sum(stems.values()), 4) > 3.0  # the input really was hot


def slap_bass(duration_s: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Short, low plucked notes (B0 31 Hz .. A1 55 Hz, a slap's loud 2nd harmonic, 80 ms decay) with
    rests of 0.2-0.6 s between them. Returns (samples, truth times_s, truth f0_hz on a 10 ms grid, 0
    where no note sounds above -30 dB of its attack)."""
    rng = np.random.default_rng(seed)
    out = np.zeros(round(duration_s * SR), np.float32)
    times = np.arange(0.0, duration_s, 0.01)
    truth = np.zeros(times.size)
    t = 0.1
    while t < duration_s - 0.5:
        f0 = float(S.midi_to_hz(int(rng.choice([23, 28, 31, 33]))))
        n_note = round(float(rng.uniform(0.12, 0.3)) * SR)
        tt = np.arange(n_note) / SR
        note = sum(a * np.sin(2 * np.pi * k * f0 * tt) for k, a in ((1, 1.0), (2, 0.9), (3, 0.4), (4, 0.2)))
        env = np.exp(-tt / 0.08) * np.minimum(1.0, tt / 0.002)
        env[-int(0.005 * SR) :] *= np.linspace(1, 0, int(0.005 * SR))
        s = round(t * SR)
        out[s : s + n_note] += (0.6 * note * env).astype(np.float32)
        audible = min(n_note / SR - 0.01, 0.08 * np.log(10 ** (30 / 20)))
        truth[(times >= t + 0.01) & (times < t + audible)] = f0
        t += n_note / SR + float(rng.uniform(0.2, 0.6))
    return out, times, truth


def test_low_slap_bass_with_rests_pitch_and_voicing() -> None:
    x, times, truth = slap_bass(12.0, seed=2)
    a = analyse_stem(S.to_stereo(x, 0.0), SR)
    assert a.kind == "tonal"  # the notes decay like drum hits, but each holds a pitch
    assert raw_pitch_accuracy(times, truth, a.frame_times_s, a.f0_hz) >= 0.90
    voiced = truth > 0
    idx = np.clip(np.round(times / a.hop_s).astype(int), 0, a.f0_hz.size - 1)
    assert np.mean(a.f0_hz[idx][voiced] > 0) >= 0.90  # voicing recall
    # Rests stay unvoiced (the centred 93 ms frames hear a note up to 46 ms past its end).
    assert np.mean(a.f0_hz[idx][~voiced] > 0) <= 0.25
    # No octave jump inside a note: every voiced frame of a note has the same pitch.
    for f0 in np.unique(truth[voiced]):
        est = a.f0_hz[idx][truth == f0]
        est = est[est > 0]
        assert np.all(np.abs(np.log2(est / np.median(est))) < 0.5)


def test_slap_bass_with_rests_keeps_its_silences() -> None:
    stem = S.to_stereo(slap_bass(8.0, seed=1)[0], 0.2)
    style = np.stack([bright_bass(82.4, 2.0), bright_bass(82.4, 2.0) * 0.7], axis=1)
    out = render_stem(stem, SR, analyse_stem(stem, SR), style, SR, analyse_style_sound(style, SR))
    check = silence_check(stem, out, SR)
    assert check.n_silent_frames > 100
    assert check.ok(-50.0), check.max_db_in_silence


def test_unvoiced_frames_inside_a_note_hold_the_note_pitch() -> None:
    # One note at 55 Hz for 3 s; the analysis (as on a real slap) loses voicing for 300 ms inside it.
    stem = bright_bass(55.0, 3.0)
    a = analyse_stem(stem, SR)
    gap = (a.frame_times_s >= 1.2) & (a.frame_times_s < 1.5)
    assert np.all(a.voiced_prob[gap] >= 0.5)
    holed: StemAnalysis = dataclasses.replace(a, f0_hz=a.f0_hz.copy(), voiced_prob=a.voiced_prob.copy())
    holed.f0_hz[gap] = 0.0
    holed.voiced_prob[gap] = 0.1
    # Half the style's grains read as unpitched (as a style analysis marks an attack or a breathy
    # stretch): where the analysis says unvoiced, grains are chosen by loudness and brightness alone,
    # so without the bridge those grains sound at the style's own 110 Hz.
    style = S.style_tone(SR, f0_hz=110.0, duration_s=2.0, timbre="square")
    table = analyse_style_sound(style, SR)
    table.f0_hz[::2] = 0.0
    out = render_stem(stem, SR, holed, style, SR, table)
    f0 = f0_frames(out, 1.2, 1.5)
    assert np.mean(np.abs(f0 / 55.0 - 1.0) < 0.03) >= 0.9, np.round(f0, 1)
