"""The lowest bass notes (B0-E1, 31-41 Hz) are pitched notes, not drums: short plucked notes with rests
are tonal at their pitch, while drum beats (a long-decaying tuned 808 kick included) stay percussive."""

from __future__ import annotations

import numpy as np
import pytest

from audiomixer.dsp.analysis import (
    ANALYSIS_SR,
    HOP,
    StemAnalysis,
    analyse_stem,
    frame_features,
    sounding_frames,
)
from audiomixer.dsp.grains import analyse_style_sound
from audiomixer_tools import signals as S

SR = 44100


def plucked_line(
    notes_midi: list[int], *, note_s: tuple[float, ...], rest_s: float, duration_s: float = 8.0, seed: int = 0
) -> tuple[np.ndarray, list[tuple[float, float, float]]]:
    """A plucked bass line: each note a harmonic tone that decays (like a drum hit) under a 3 ms noise
    pluck, `note_s` long (drawn from the choices), followed by `rest_s` of silence. Returns the samples
    and the notes as (start s, stop s, f0 Hz)."""
    rng = np.random.default_rng(seed)
    out = np.zeros(round(duration_s * SR))
    notes = []
    t = 0.05
    while t < duration_s - 0.5:
        f0 = float(S.midi_to_hz(int(rng.choice(notes_midi))))
        dur = float(rng.choice(note_s))
        n = round(dur * SR)
        note = S.harmonic_tone(np.full(n, f0), SR, n_harmonics=8) * np.exp(-7.0 * np.arange(n) / SR)
        fade = int(0.01 * SR)
        note[-fade:] *= np.linspace(1, 0, fade)
        click = int(0.003 * SR)
        note[:click] += 0.8 * rng.standard_normal(click) * np.linspace(1, 0, click)
        s = round(t * SR)
        out[s : s + n] += float(rng.uniform(0.6, 1.0)) * note
        notes.append((t, t + dur, f0))
        t += dur + rest_s
    return (0.5 * out / np.abs(out).max()).astype(np.float32), notes


def share_on_pitch(a: StemAnalysis, notes: list[tuple[float, float, float]], cents: float = 50.0) -> float:
    """Share of the frames inside the notes (20 ms in from each end) whose f0 is within `cents`."""
    times = a.frame_times_s
    hits = total = 0
    for start, stop, f0 in notes:
        inside = (times > start + 0.02) & (times < stop - 0.02)
        total += int(inside.sum())
        off = np.abs(1200 * np.log2(np.maximum(a.f0_hz[inside], 1e-3) / f0))
        hits += int((off <= cents).sum())
    return hits / total


def kick_808(decay_s: float) -> np.ndarray:
    """A tuned 808-like kick: a sine swept from 180 Hz down to 45 Hz in ~15 ms that decays 60 dB over
    `decay_s`."""
    n = round(decay_s * SR)
    t = np.arange(n) / SR
    freq = 45.0 + (180.0 - 45.0) * np.exp(-t / 0.015)
    x = np.sin(2 * np.pi * np.cumsum(freq) / SR) * np.exp(-t * 6.9 / decay_s)
    fade = int(0.03 * SR)
    x[-fade:] *= np.linspace(1, 0, fade)
    return x


def beat_808(duration_s: float, decay_s: float) -> np.ndarray:
    """Sixteenths at 140 bpm: the 808 on steps 0, 8 and 11, snares on 4 and 12, quiet hats on eighths."""
    out = np.zeros(round(duration_s * SR))
    kick = kick_808(decay_s)
    step_s = 60.0 / 140 / 4
    t, k = 0.05, 0
    while t < duration_s - decay_s - 0.1:
        pos = k % 16
        hits = [kick] if pos in (0, 8, 11) else []
        if pos in (4, 12):
            hits.append(S.drum_hit("snare", SR, kit=0, seed=k))
        if pos % 2 == 0:
            hits.append(S.drum_hit("hat", SR, kit=0, velocity=0.4, seed=k))
        s = round(t * SR)
        for hit in hits:
            out[s : s + hit.size] += hit[: out.size - s]
        t += step_s
        k += 1
    return (0.8 * out / np.abs(out).max()).astype(np.float32)


@pytest.mark.parametrize(
    ("name", "notes_midi", "note_s", "rest_s"),
    [
        ("B0, 100 ms plucks, 150 ms rests", [23], (0.1,), 0.15),
        ("E1, 70-100 ms plucks, 150 ms rests", [28], (0.07, 0.1), 0.15),
        ("B0-E1, 80-150 ms plucks, 100 ms rests", [23, 24, 26, 28], (0.08, 0.1, 0.15), 0.1),
        # Higher up the same spill made the plucks' attacks read as noise-like frames.
        ("A1, 100 ms plucks, 150 ms rests", [33], (0.1,), 0.15),
    ],
)
def test_short_low_plucks_with_rests_are_tonal_at_their_pitch(
    name: str, notes_midi: list[int], note_s: tuple[float, ...], rest_s: float
) -> None:
    x, notes = plucked_line(notes_midi, note_s=note_s, rest_s=rest_s, seed=3)
    a = analyse_stem(x, SR)
    # It decays between notes as drums do; only its pitch tells it apart.
    assert a.sustain_db < -2.0, name
    assert a.kind == "tonal", (name, a.extra)
    assert share_on_pitch(a, notes) >= 0.9, name
    # The same line as a style sound is tonal too.
    assert analyse_style_sound(x, SR).kind == "tonal", name


def test_sounding_frames_are_those_centred_in_the_sound() -> None:
    # A 100 ms tone burst in silence: the 93 ms frames hear it from 46 ms before its start to 46 ms
    # after its end, but only those centred within it (to half a hop) sound.
    y = np.zeros(ANALYSIS_SR)
    start, stop = round(0.3 * ANALYSIS_SR), round(0.4 * ANALYSIS_SR)
    y[start:stop] = 0.5 * np.sin(2 * np.pi * 220.0 * np.arange(stop - start) / ANALYSIS_SR)
    f = frame_features(y, ANALYSIS_SR, with_pitch=False)
    centres = np.arange(f.n_frames) * HOP
    sounding = sounding_frames(f)
    assert sounding[(centres > start + HOP) & (centres < stop - HOP)].all()
    assert not sounding[(centres < start - HOP) | (centres > stop + HOP)].any()
    active = 20 * np.log10(np.maximum(f.rms, 1e-10)) >= -60.0
    assert active.sum() >= sounding.sum() + 2 * (1024 // HOP) - 2


@pytest.mark.parametrize("decay_s", [0.4, 0.8])
def test_beat_with_a_long_tuned_808_kick_stays_percussive(decay_s: float) -> None:
    a = analyse_stem(beat_808(12.0, decay_s), SR)
    assert a.kind == "percussive", a.extra


def test_kits_stay_percussive() -> None:
    for kit in (0, 1):
        x, _ = S.drum_pattern(12.0, SR, kit=kit, seed=7)
        assert analyse_stem(x, SR).kind == "percussive", kit
        assert analyse_style_sound(x, SR).kind == "percussive", kit
