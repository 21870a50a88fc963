"""Stem and style-sound analysis against synthetic signals whose answers are known."""

from __future__ import annotations

import json

import numpy as np
import pytest

from audiomixer.dsp.analysis import StemAnalysis, analyse_stem
from audiomixer.dsp.grains import GrainTable, analyse_style_sound
from audiomixer_tools import signals as S
from audiomixer_tools.metrics import onset_f1, raw_pitch_accuracy

SR = 44100


@pytest.fixture(scope="module")
def drums() -> tuple[np.ndarray, S.DrumTruth, StemAnalysis]:
    x, truth = S.drum_pattern(16.0, SR, kit=0, seed=3)
    return x, truth, analyse_stem(x, SR)


@pytest.fixture(scope="module")
def bass() -> tuple[np.ndarray, S.PitchTruth, StemAnalysis]:
    x, truth = S.note_line(16.0, SR, seed=4)
    return x, truth, analyse_stem(x, SR)


def test_sine_has_its_f0() -> None:
    for f0 in (55.0, 110.0, 440.0, 1000.0):
        t = np.arange(2 * SR) / SR
        a = analyse_stem((0.5 * np.sin(2 * np.pi * f0 * t)).astype(np.float32), SR)
        voiced = a.f0_hz[a.voiced_prob >= 0.5]
        assert voiced.size > 0.9 * a.f0_hz.size
        cents = 1200 * np.abs(np.log2(np.median(voiced) / f0))
        assert cents < 5, (f0, np.median(voiced))
        assert a.kind == "tonal"


def test_click_train_onsets_are_found_to_the_millisecond() -> None:
    times = np.arange(0.3, 7.5, 0.29)
    a = analyse_stem(S.click_train(times, SR, 8.0), SR)
    assert a.onset_times_s.size == times.size
    assert np.max(np.abs(a.onset_times_s - times)) < 0.002
    assert onset_f1(times, a.onset_times_s) == 1.0
    assert a.kind == "percussive"


def test_drum_stem_onset_f1(drums: tuple[np.ndarray, S.DrumTruth, StemAnalysis]) -> None:
    _x, truth, a = drums
    assert onset_f1(truth.onset_times_s, a.onset_times_s) >= 0.95
    assert a.kind == "percussive"
    # Strength and peak are per onset; the loudest hit has strength 1.
    assert a.onset_strengths.shape == a.onset_times_s.shape == a.onset_peaks.shape
    assert np.isclose(a.onset_strengths.max(), 1.0)


def test_bass_line_raw_pitch_accuracy(bass: tuple[np.ndarray, S.PitchTruth, StemAnalysis]) -> None:
    _x, truth, a = bass
    assert raw_pitch_accuracy(truth.times_s, truth.f0_hz, a.frame_times_s, a.f0_hz) >= 0.90
    assert a.kind == "tonal"
    # f0 is 0 exactly where the voicing decision says unvoiced.
    assert np.all((a.f0_hz > 0) == (a.voiced_prob >= 0.5))


def test_vocal_line_with_vibrato_rpa() -> None:
    x, truth = S.note_line(
        12.0, SR, notes_midi=[57, 60, 64, 67, 72], note_beats=1.0, n_harmonics=8, vibrato_cents=30.0, seed=5
    )
    a = analyse_stem(S.to_stereo(x), SR)
    assert a.n_channels == 2
    assert raw_pitch_accuracy(truth.times_s, truth.f0_hz, a.frame_times_s, a.f0_hz) >= 0.90


def test_silence_map_and_envelope() -> None:
    x, _ = S.note_line(8.0, SR, seed=6, silent_spans_s=[(3.0, 5.0)])
    a = analyse_stem(x, SR)
    t = a.frame_times_s
    gap = (t > 3.3) & (t < 4.7)
    assert a.silence[gap].all()
    assert not a.silence[(t > 1.0) & (t < 2.5)].all()
    assert a.rms.shape == a.silence.shape == t.shape
    assert not np.any((a.onset_times_s > 3.3) & (a.onset_times_s < 4.7))
    assert a.duration_s == pytest.approx(8.0, abs=1e-3)


def test_pads_are_tonal_and_analysis_roundtrips_json() -> None:
    a = analyse_stem(S.pad_chords(8.0, SR), SR)
    assert a.kind == "tonal"
    doc = json.loads(json.dumps(a.to_dict()))
    assert len(doc["onsets_s"]) == a.onset_times_s.size
    b = StemAnalysis.from_dict(doc)
    assert b.kind == a.kind and b.n_samples == a.n_samples and b.sample_rate == SR
    np.testing.assert_allclose(b.onset_times_s, a.onset_times_s, atol=1e-5)
    np.testing.assert_allclose(b.f0_hz, a.f0_hz, atol=1e-3)
    np.testing.assert_array_equal(b.silence, a.silence)


def test_empty_and_bad_shapes() -> None:
    with pytest.raises(ValueError):
        analyse_stem(np.zeros((4, 4, 4), np.float32), SR)


def test_style_sound_grain_table_descriptors() -> None:
    tone = S.style_tone(SR, f0_hz=220.0, duration_s=2.0, timbre="square")
    table = analyse_style_sound(tone, SR, grain_ms=100.0)
    assert table.n_grains >= 30
    regular = ~table.onset_aligned
    assert np.all(table.lengths[regular] == int(0.1 * SR))
    assert np.all(table.starts + table.lengths <= tone.size)
    voiced = table.f0_hz[table.f0_hz > 0]
    assert voiced.size >= 0.8 * table.n_grains
    assert abs(1200 * np.log2(np.median(voiced) / 220.0)) < 10
    assert table.mfcc.shape == (table.n_grains, 13)
    assert table.kind == "tonal"
    summary = table.summary()
    assert summary["n_grains"] == table.n_grains
    assert summary["median_f0_hz"] == pytest.approx(220.0, rel=0.01)
    assert summary["duration_s"] == pytest.approx(2.0, abs=1e-3)
    # Brightness ranks: a square wave is brighter than an organ tone an octave lower.
    organ = analyse_style_sound(S.style_tone(SR, f0_hz=110.0, timbre="organ"), SR)
    assert organ.summary()["mean_centroid_hz"] < summary["mean_centroid_hz"] * 2


def test_style_kit_grains_align_to_hits_and_roundtrip() -> None:
    kit = S.style_kit(SR, kit=1)
    table = analyse_style_sound(kit, SR)
    assert table.kind == "percussive"
    hits = np.arange(9) * int(0.6 * SR)
    aligned = table.starts[table.onset_aligned]
    # Every hit of the pack has a grain starting within 2 ms of it.
    assert all(np.min(np.abs(aligned - h)) < 0.002 * SR for h in hits)
    loud = table.loudness_db
    assert np.isfinite(loud).all()
    back = GrainTable.from_dict(json.loads(json.dumps(table.to_dict())))
    np.testing.assert_array_equal(back.starts, table.starts)
    np.testing.assert_array_equal(back.onset_aligned, table.onset_aligned)
    np.testing.assert_allclose(back.mfcc, table.mfcc, atol=1e-3)
    assert back.summary() == table.summary()


def test_style_sound_shorter_than_a_grain() -> None:
    short = S.drum_hit("snare", SR)[: int(0.05 * SR)]
    table = analyse_style_sound(short, SR, grain_ms=200.0)
    assert table.n_grains >= 1
    assert np.all(table.starts + table.lengths <= short.size)
