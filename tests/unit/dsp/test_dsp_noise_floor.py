"""A separated stem's noise floor is not sound: a plucked bass line whose rests sit on bleed or noise at
-50/-45 dBFS stays tonal, on its notes' pitch, with its rests silent and unvoiced; a drum beat with a bass
line bleeding under it stays percussive; clean stems and stems with no rests keep the fixed threshold."""

from __future__ import annotations

import numpy as np
import pytest

from audiomixer.dsp.analysis import (
    ANALYSIS_SR,
    NOISE_MARGIN_DB,
    SILENCE_DB,
    analyse_stem,
    db,
    frame_features,
    noise_floor_db,
    silence_threshold_db,
)
from audiomixer_tools import signals as S

SR = 44100


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Pink (1/f power) noise of unit RMS, shaped in the frequency domain."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freq = np.arange(spectrum.size, dtype=np.float64)
    freq[0] = 1.0
    x = np.fft.irfft(spectrum / np.sqrt(freq), n)
    return x / np.sqrt(np.mean(x**2))


def noise(n: int, level_dbfs: float, colour: str, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n) if colour == "white" else pink_noise(n, rng)
    return np.asarray(x / np.sqrt(np.mean(x**2)) * 10 ** (level_dbfs / 20.0))


def plucked_e1_a1(
    duration_s: float = 8.0, seed: int = 0
) -> tuple[np.ndarray, list[tuple[float, float, float]]]:
    """Short plucked notes E1-A1 (41-55 Hz, 120-300 ms, decaying 60 dB/s) with 250 ms rests, peak 0.5.
    Returns the samples and the notes as (start s, stop s, f0 Hz)."""
    rng = np.random.default_rng(seed)
    out = np.zeros(round(duration_s * SR))
    notes = []
    t = 0.05
    while t < duration_s - 0.5:
        f0 = float(S.midi_to_hz(int(rng.choice([28, 29, 31, 33]))))
        dur = float(rng.choice([0.12, 0.2, 0.3]))
        n = round(dur * SR)
        note = S.harmonic_tone(np.full(n, f0), SR, n_harmonics=8) * np.exp(-7.0 * np.arange(n) / SR)
        note[-int(0.01 * SR) :] *= np.linspace(1, 0, int(0.01 * SR))
        click = int(0.003 * SR)
        note[:click] += 0.8 * rng.standard_normal(click) * np.linspace(1, 0, click)
        s = round(t * SR)
        out[s : s + n] += float(rng.uniform(0.6, 1.0)) * note
        notes.append((t, t + dur, f0))
        t += dur + 0.25
    return 0.5 * out / np.abs(out).max(), notes


def on_pitch_share(times_s: np.ndarray, f0_hz: np.ndarray, notes: list[tuple[float, float, float]]) -> float:
    """Share of the frames inside the notes (20 ms in from each end) within 50 cents of the note."""
    hits = total = 0
    for start, stop, f0 in notes:
        inside = (times_s > start + 0.02) & (times_s < stop - 0.02)
        total += int(inside.sum())
        hits += int((np.abs(1200 * np.log2(np.maximum(f0_hz[inside], 1e-3) / f0)) <= 50).sum())
    return hits / total


def in_rests(times_s: np.ndarray, notes: list[tuple[float, float, float]]) -> np.ndarray:
    """bool per frame: the frame's 93 ms window (+-46 ms) lies wholly in a rest."""
    rest = (times_s > notes[0][0]) & (times_s < notes[-1][1])
    for start, stop, _ in notes:
        rest &= ~((times_s > start - 0.05) & (times_s < stop + 0.05))
    return rest


@pytest.mark.parametrize("colour", ["white", "pink"])
@pytest.mark.parametrize("level_dbfs", [-50.0, -45.0])
def test_plucked_low_bass_on_a_noise_floor_is_tonal_and_its_rests_are_silent(
    level_dbfs: float, colour: str
) -> None:
    line, notes = plucked_e1_a1()
    x = (line + noise(line.size, level_dbfs, colour)).astype(np.float32)
    a = analyse_stem(x, SR)
    assert a.kind == "tonal", a.extra
    times = a.frame_times_s
    assert on_pitch_share(times, a.f0_hz, notes) >= 0.95
    rest = in_rests(times, notes)
    assert rest.sum() > 100
    # The rests are silence: unvoiced, and under the threshold the render gates at.
    assert np.mean(a.f0_hz[rest] > 0) <= 0.02
    assert np.mean(a.voiced_prob[rest] >= 0.5) <= 0.02
    assert np.mean(a.silence[rest]) >= 0.98
    # ... and the notes are not: the threshold sits between the floor and the notes.
    assert -60.0 < a.silence_db <= -40.0
    assert a.silence_db < float(np.percentile(db(a.rms[~rest]), 50))


def test_drum_beat_with_a_bass_line_bleeding_under_it_is_percussive() -> None:
    drums, _ = S.drum_pattern(8.0, SR, bpm=110.0, seed=2)
    bass, _ = S.note_line(8.0, SR, notes_midi=[28, 31, 33, 36], note_beats=1.0, legato=0.6, seed=4)
    bleed = bass / np.sqrt(np.mean(np.square(bass[bass != 0]))) * 10 ** (-50.0 / 20.0)
    a = analyse_stem((drums + bleed).astype(np.float32), SR)
    assert a.kind == "percussive", a.extra


def test_noise_floor_is_the_level_of_the_noise_in_the_rests() -> None:
    line, _ = plucked_e1_a1()
    # Made at the analysis rate, so that resampling does not filter the noise.
    y = np.interp(np.arange(0, line.size, SR / ANALYSIS_SR), np.arange(line.size), line)
    y = y + noise(y.size, -50.0, "white")
    level_db = db(frame_features(y.astype(np.float32), ANALYSIS_SR, with_pitch=False).rms)
    floor = noise_floor_db(level_db)
    assert floor is not None and abs(floor + 50.0) <= 1.0
    assert silence_threshold_db(level_db) == pytest.approx(floor + NOISE_MARGIN_DB)


def test_clean_and_quiet_noise_floors_keep_the_fixed_threshold() -> None:
    line, notes = plucked_e1_a1()
    for x in (line, line + noise(line.size, -75.0, "pink")):
        a = analyse_stem(x.astype(np.float32), SR)
        assert a.silence_db == SILENCE_DB
        assert np.array_equal(a.silence, db(a.rms) < SILENCE_DB)
        assert a.kind == "tonal"
        assert on_pitch_share(a.frame_times_s, a.f0_hz, notes) >= 0.95


def test_a_steady_quiet_pad_without_rests_is_not_a_noise_floor() -> None:
    # A held chord 50 dB down has no rests: its steady level is its sound, not a floor to gate away.
    pad = S.pad_chords(8.0, SR, seed=1)
    pad = pad / np.sqrt(np.mean(np.square(pad))) * 10 ** (-50.0 / 20.0)
    a = analyse_stem(pad.astype(np.float32), SR)
    assert a.silence_db == SILENCE_DB
    assert np.array_equal(a.silence, db(a.rms) < SILENCE_DB)


@pytest.mark.parametrize("level_dbfs", [-50.0, -45.0])
def test_a_line_with_long_rests_on_a_noise_floor_is_not_taken_for_chords(level_dbfs: float) -> None:
    """The render asks `chord_voices` whether a tonal stem plays chords; noise reads as many notes, so in
    a line's long rests (2 s) the noise floor alone would make it "chords" (three grain voices rendering
    noise) unless frames under the analysis' noise-adaptive threshold hold no note."""
    from audiomixer.dsp.polyphony import chord_voices

    rng = np.random.default_rng(0)
    line = np.zeros(16 * SR)
    t = 0.1
    while t < 15.0:
        f0 = float(S.midi_to_hz(int(rng.choice([33, 36, 38, 40]))))
        n = round(0.2 * SR)
        note = S.harmonic_tone(np.full(n, f0), SR, n_harmonics=8) * np.exp(-7.0 * np.arange(n) / SR)
        line[round(t * SR) : round(t * SR) + n] += 0.5 * note
        t += 2.2
    stem = line + noise(line.size, level_dbfs, "pink")
    analysis = analyse_stem(stem, SR)
    assert analysis.kind == "tonal"
    assert analysis.silence_db > SILENCE_DB
    assert chord_voices(stem, SR, silence_db=analysis.silence_db) is None
    assert chord_voices(line, SR) is None
