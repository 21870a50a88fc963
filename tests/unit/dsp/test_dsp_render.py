"""Granular re-rendering quality bars on synthetic stems whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from audiomixer.dsp.analysis import StemAnalysis, analyse_stem
from audiomixer.dsp.grains import GrainTable, analyse_style_sound
from audiomixer.dsp.granular import render_stem
from audiomixer_tools import signals as S
from audiomixer_tools.metrics import (
    envelope_correlation,
    mfcc_distance,
    onset_f1,
    raw_pitch_accuracy,
    silence_check,
)

SR = 44100
GAP = [(6.0, 8.0)]


@pytest.fixture(scope="module")
def drum_case() -> dict[str, object]:
    x, truth = S.drum_pattern(12.0, SR, kit=0, seed=11, silent_spans_s=GAP)
    stem = S.to_stereo(x, 0.2)
    kit = S.style_kit(SR, kit=1)
    a = analyse_stem(stem, SR)
    table = analyse_style_sound(kit, SR)
    out = render_stem(stem, SR, a, kit, SR, table)
    return {"stem": stem, "truth": truth, "kit": kit, "a": a, "table": table, "out": out}


@pytest.fixture(scope="module")
def bass_case() -> dict[str, object]:
    x, truth = S.note_line(12.0, SR, seed=12, silent_spans_s=GAP)
    tone = S.style_tone(SR, f0_hz=220.0, duration_s=2.0, timbre="square")
    a = analyse_stem(x, SR)
    table = analyse_style_sound(tone, SR)
    mapped = render_stem(x, SR, a, tone, SR, table)
    unmapped = render_stem(x, SR, a, tone, SR, table, use_pitch_mapping=False)
    return {
        "stem": x,
        "truth": truth,
        "tone": tone,
        "a": a,
        "table": table,
        "mapped": mapped,
        "unmapped": unmapped,
    }


def test_drums_rerendered_with_another_kit_keep_their_onsets(drum_case: dict) -> None:
    out = drum_case["out"]
    again = analyse_stem(out, SR)
    assert again.kind == "percussive"
    assert onset_f1(drum_case["truth"].onset_times_s, again.onset_times_s) >= 0.90


def test_drum_render_shape_envelope_timbre_silence(drum_case: dict) -> None:
    stem, out, kit = drum_case["stem"], drum_case["out"], drum_case["kit"]
    assert out.shape == stem.shape and out.dtype == np.float32
    assert np.isfinite(out).all()
    assert envelope_correlation(stem, out, SR) >= 0.8
    assert mfcc_distance(out, kit, SR) < mfcc_distance(stem, kit, SR)
    check = silence_check(stem, out, SR)
    assert check.n_silent_frames > 100  # the 2 s gap and the decays between hits
    assert check.ok(-50.0), check
    # The stereo image follows the stem's (panned right): right channel louder.
    assert np.sum(out[:, 1] ** 2) > np.sum(out[:, 0] ** 2)


def test_drum_render_is_not_the_stem(drum_case: dict) -> None:
    stem, out = drum_case["stem"], drum_case["out"]
    corr = np.corrcoef(stem[:, 0], out[:, 0])[0, 1]
    assert corr < 0.5


def test_bass_with_pitch_mapping_follows_f0_and_without_it_does_not(bass_case: dict) -> None:
    truth = bass_case["truth"]
    mapped = analyse_stem(bass_case["mapped"], SR)
    unmapped = analyse_stem(bass_case["unmapped"], SR)
    rpa_mapped = raw_pitch_accuracy(truth.times_s, truth.f0_hz, mapped.frame_times_s, mapped.f0_hz)
    rpa_unmapped = raw_pitch_accuracy(truth.times_s, truth.f0_hz, unmapped.frame_times_s, unmapped.f0_hz)
    assert rpa_mapped >= 0.85
    assert rpa_unmapped < 0.3
    assert rpa_mapped - rpa_unmapped > 0.5


def test_bass_render_envelope_timbre_silence(bass_case: dict) -> None:
    stem, out, tone = bass_case["stem"], bass_case["mapped"], bass_case["tone"]
    assert out.shape == stem.shape
    assert envelope_correlation(stem, out, SR) >= 0.8
    assert mfcc_distance(out, tone, SR) < mfcc_distance(stem, tone, SR)
    assert silence_check(stem, out, SR).ok(-50.0)
    assert silence_check(stem, bass_case["unmapped"], SR).ok(-50.0)


def test_envelope_off_does_not_follow_envelope_as_closely(bass_case: dict) -> None:
    stem = bass_case["stem"]
    a: StemAnalysis = bass_case["a"]
    table: GrainTable = bass_case["table"]
    # A style sound with a strong tremolo: only the envelope follower removes it.
    t = np.arange(2 * SR) / SR
    trem = (bass_case["tone"] * (0.55 + 0.45 * np.sin(2 * np.pi * 3.0 * t))).astype(np.float32)
    table = analyse_style_sound(trem, SR)
    with_env = render_stem(stem, SR, a, trem, SR, table, use_envelope=True)
    without = render_stem(stem, SR, a, trem, SR, table, use_envelope=False)
    assert envelope_correlation(stem, with_env, SR) >= 0.8
    assert envelope_correlation(stem, without, SR) < envelope_correlation(stem, with_env, SR)
    assert silence_check(stem, without, SR).ok(-50.0)


def test_same_seed_same_output_and_modes(bass_case: dict) -> None:
    stem, a, tone, table = bass_case["stem"], bass_case["a"], bass_case["tone"], bass_case["table"]
    one = render_stem(stem, SR, a, tone, SR, table, seed=7)
    two = render_stem(stem, SR, a, tone, SR, table, seed=7)
    np.testing.assert_array_equal(one, two)
    # Forcing percussive mode on a tonal stem triggers grains at its note onsets instead.
    perc = render_stem(stem, SR, a, tone, SR, table, mode="percussive", use_envelope=False)
    assert perc.shape == stem.shape
    assert not np.allclose(perc, one)


def test_grain_ms_is_honoured_for_percussive_grains() -> None:
    # One hit followed by a quiet sustained tail keeps the gate open; without the envelope follower the
    # output after the hit lasts exactly one grain.
    n = 2 * SR
    stem = np.zeros(n, np.float32)
    hit = S.drum_hit("snare", SR)
    stem[SR // 2 : SR // 2 + hit.size] += hit
    stem[SR // 2 :] += 0.01 * np.sin(2 * np.pi * 300 * np.arange(n - SR // 2) / SR).astype(np.float32)
    style = S.style_tone(SR, f0_hz=330.0, duration_s=2.0, timbre="organ")
    a = analyse_stem(stem, SR)
    table = analyse_style_sound(style, SR)
    for grain_ms in (30.0, 250.0):
        out = render_stem(
            stem, SR, a, style, SR, table, grain_ms=grain_ms, mode="percussive", use_envelope=False
        )
        nz = np.nonzero(np.abs(out) > 1e-6)[0]
        span_ms = (nz[-1] - nz[0] + 1) / SR * 1000
        assert grain_ms * 0.9 <= span_ms <= grain_ms * 1.05 + 2, (grain_ms, span_ms)


def test_grain_ms_changes_tonal_output_and_is_validated(bass_case: dict) -> None:
    stem, a, tone, table = bass_case["stem"], bass_case["a"], bass_case["tone"], bass_case["table"]
    short = render_stem(stem, SR, a, tone, SR, table, grain_ms=40.0)
    assert short.shape == stem.shape
    assert not np.allclose(short, bass_case["mapped"])
    for bad in (5.0, 1500.0):
        with pytest.raises(ValueError):
            render_stem(stem, SR, a, tone, SR, table, grain_ms=bad)


def test_style_at_another_sample_rate_and_silent_stem(bass_case: dict) -> None:
    stem, a = bass_case["stem"], bass_case["a"]
    tone48 = S.style_tone(48000, f0_hz=220.0, duration_s=1.0, timbre="fm")
    table48 = analyse_style_sound(tone48, 48000)
    out = render_stem(stem, SR, a, tone48, 48000, table48)
    assert out.shape == stem.shape
    assert envelope_correlation(stem, out, SR) >= 0.8
    silent = np.zeros((SR, 2), np.float32)
    sa = analyse_stem(silent, SR)
    res = render_stem(silent, SR, sa, tone48, 48000, table48)
    assert res.shape == silent.shape
    assert np.all(res == 0)
