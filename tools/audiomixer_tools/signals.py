"""Synthetic test signals whose answers are known: click trains, two synthetic drum kits, harmonic bass
lines and melodies with their true f0, pads, style sounds and a four-stem song.

Used by the unit tests and by the benchmarks; everything is deterministic for a given seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy.signal import butter, sosfilt

DrumName = Literal["kick", "snare", "hat"]


def midi_to_hz(note: float | np.ndarray) -> np.ndarray:
    return np.asarray(440.0 * 2.0 ** ((np.asarray(note, dtype=np.float64) - 69.0) / 12.0))


def click_train(
    onset_times_s: np.ndarray | list[float],
    sample_rate: int = 44100,
    duration_s: float | None = None,
    *,
    click_ms: float = 2.0,
    amplitude: float = 0.8,
) -> np.ndarray:
    """Mono train of short decaying noise bursts starting exactly at the given times."""
    times = np.asarray(onset_times_s, dtype=np.float64)
    if duration_s is None:
        duration_s = float(times.max(initial=0.0)) + 0.5
    n = round(duration_s * sample_rate)
    out = np.zeros(n, dtype=np.float32)
    length = max(2, round(click_ms * 1e-3 * sample_rate))
    rng = np.random.default_rng(1234)
    click = rng.uniform(-1.0, 1.0, length) * np.exp(-np.linspace(0.0, 5.0, length))
    click[0] = 1.0
    click = (amplitude * click / np.max(np.abs(click))).astype(np.float32)
    for t in times:
        s = round(t * sample_rate)
        e = min(n, s + length)
        if 0 <= s < n:
            out[s:e] += click[: e - s]
    return out


def _noise(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.standard_normal(n)


def drum_hit(
    name: DrumName, sample_rate: int = 44100, *, kit: int = 0, velocity: float = 1.0, seed: int = 0
) -> np.ndarray:
    """One synthetic drum hit (mono float32, peak == velocity). Kit 0 and kit 1 sound clearly different
    (kit 1: lower, longer kick with a click; ringing metallic snare; square-wave cymbal hat)."""
    rng = np.random.default_rng(seed + 7919 * kit + {"kick": 0, "snare": 1, "hat": 2}[name])
    sr = sample_rate
    if name == "kick":
        dur = 0.35 if kit == 0 else 0.5
        t = np.arange(int(dur * sr)) / sr
        f_hi, f_lo, sweep = (160.0, 50.0, 25.0) if kit == 0 else (120.0, 42.0, 12.0)
        freq = f_lo + (f_hi - f_lo) * np.exp(-sweep * t)
        phase = 2 * np.pi * np.cumsum(freq) / sr
        x = np.sin(phase) * np.exp(-t * (9.0 if kit == 0 else 6.0))
        if kit == 1:
            click_len = int(0.004 * sr)
            x[:click_len] += 0.6 * _noise(rng, click_len) * np.linspace(1, 0, click_len)
    elif name == "snare":
        dur = 0.25 if kit == 0 else 0.3
        t = np.arange(int(dur * sr)) / sr
        sos = butter(2, [1000, 6000] if kit == 0 else [3000, 12000], btype="band", fs=sr, output="sos")
        noise = sosfilt(sos, _noise(rng, t.size))
        tone_f = 185.0 if kit == 0 else 330.0
        tone = np.sin(2 * np.pi * tone_f * t)
        if kit == 1:
            tone += 0.5 * np.sin(2 * np.pi * 545.0 * t)
        x = 0.8 * noise / (np.max(np.abs(noise)) + 1e-12) * np.exp(-t * 18) + 0.5 * tone * np.exp(-t * 25)
    else:
        dur = 0.08 if kit == 0 else 0.15
        t = np.arange(int(dur * sr)) / sr
        if kit == 0:
            sos = butter(4, 7000, btype="high", fs=sr, output="sos")
            x = sosfilt(sos, _noise(rng, t.size))
        else:
            partials = (205.3, 304.4, 369.6, 522.7, 540.0, 800.0)
            x = np.sum([np.sign(np.sin(2 * np.pi * 8.0 * f * t + k)) for k, f in enumerate(partials)], axis=0)
            x = sosfilt(butter(2, 5000, btype="high", fs=sr, output="sos"), x)
        x = x * np.exp(-t * (60.0 if kit == 0 else 30.0))
    # 1 ms fade-in keeps the transient sharp without a DC step; the fade-out avoids a click at the cut.
    fade = min(x.size, max(1, int(0.001 * sr)))
    x[:fade] *= np.linspace(0.0, 1.0, fade)
    tail = min(x.size, int(0.03 * sr))
    x[-tail:] *= np.linspace(1.0, 0.0, tail)
    x = x / (np.max(np.abs(x)) + 1e-12) * velocity
    return x.astype(np.float32)


@dataclass
class DrumTruth:
    onset_times_s: np.ndarray
    hits: list[tuple[float, DrumName, float]] = field(default_factory=list)


def drum_pattern(
    duration_s: float,
    sample_rate: int = 44100,
    *,
    bpm: float = 120.0,
    kit: int = 0,
    seed: int = 0,
    silent_spans_s: list[tuple[float, float]] | None = None,
) -> tuple[np.ndarray, DrumTruth]:
    """A mono drum stem: kick on beats 1 and 3 (plus the odd off-beat 16th), snare on 2 and 4, hats on
    eighths with random velocities. Returns the samples and the true onset times (each distinct hit time)."""
    rng = np.random.default_rng(seed)
    n = round(duration_s * sample_rate)
    out = np.zeros(n, dtype=np.float64)
    eighth = 30.0 / bpm
    hits: list[tuple[float, DrumName, float]] = []
    t = 0.05
    step = 0
    spans = silent_spans_s or []
    cache: dict[tuple[str, int], np.ndarray] = {}
    while t < duration_s - 0.3:
        beat_pos = step % 8  # eighths in a 4/4 bar
        names: list[DrumName] = ["hat"]
        extra: list[DrumName] = ["kick"]
        if beat_pos in (0, 4):
            names.append("kick")
        if beat_pos in (2, 6):
            names.append("snare")
        times = [t]
        if beat_pos == 5 and rng.random() < 0.5:
            times.append(t + eighth / 2)  # a 16th-note kick pickup
        for k, ht in enumerate(times):
            if any(a - 0.3 <= ht < b for a, b in spans):
                continue
            for name in names if k == 0 else extra:
                vel = float(rng.uniform(0.55, 1.0)) * (0.5 if name == "hat" else 1.0)
                key = (name, kit)
                if key not in cache:
                    cache[key] = drum_hit(name, sample_rate, kit=kit, seed=seed)
                hit = cache[key] * vel
                s = round(ht * sample_rate)
                e = min(n, s + hit.size)
                out[s:e] += hit[: e - s]
                hits.append((ht, name, vel))
        t += eighth
        step += 1
    peak = np.max(np.abs(out)) + 1e-12
    out *= 0.8 / peak
    onsets = np.unique(np.round([h[0] for h in hits], 6))
    return out.astype(np.float32), DrumTruth(onsets, hits)


def fade_edges(x: np.ndarray, ramp_samples: int) -> np.ndarray:
    """`x` with a linear fade-in and fade-out of `ramp_samples` each, in place (and returned): a note
    that starts and stops without a click."""
    x[:ramp_samples] *= np.linspace(0.0, 1.0, ramp_samples)
    x[-ramp_samples:] *= np.linspace(1.0, 0.0, ramp_samples)
    return x


def harmonic_tone(
    f0_hz: np.ndarray, sample_rate: int, *, n_harmonics: int = 6, rolloff: float = 1.0, phase0: float = 0.0
) -> np.ndarray:
    """Sum of harmonics following a per-sample f0 track (Hz); harmonics above Nyquist are dropped."""
    phase = phase0 + 2 * np.pi * np.cumsum(f0_hz) / sample_rate
    out = np.zeros(f0_hz.size, dtype=np.float64)
    for k in range(1, n_harmonics + 1):
        audible = (k * f0_hz) < 0.45 * sample_rate
        out += np.where(audible, np.sin(k * phase) / k**rolloff, 0.0)
    return out


@dataclass
class PitchTruth:
    """Reference f0 on a 10 ms grid, 0 Hz where no note sounds (mir_eval's convention)."""

    times_s: np.ndarray
    f0_hz: np.ndarray


def note_line(
    duration_s: float,
    sample_rate: int = 44100,
    *,
    notes_midi: list[int] | None = None,
    bpm: float = 120.0,
    note_beats: float = 0.5,
    legato: float = 0.85,
    n_harmonics: int = 6,
    vibrato_cents: float = 0.0,
    amplitude: float = 0.6,
    seed: int = 0,
    silent_spans_s: list[tuple[float, float]] | None = None,
) -> tuple[np.ndarray, PitchTruth]:
    """A monophonic line of harmonic notes (a bass line by default) and its true f0 track."""
    rng = np.random.default_rng(seed)
    if notes_midi is None:
        notes_midi = [28, 31, 33, 35, 36, 38, 40, 43, 45]  # E1..A2: a bass register
    n = round(duration_s * sample_rate)
    f0 = np.zeros(n)
    gain = np.zeros(n)
    note_len = note_beats * 60.0 / bpm
    t = 0.05
    spans = silent_spans_s or []
    attack = int(0.005 * sample_rate)
    release = int(0.02 * sample_rate)
    while t + note_len < duration_s:
        if not any(a - note_len <= t < b for a, b in spans):
            s = round(t * sample_rate)
            e = round((t + note_len * legato) * sample_rate)
            f = float(midi_to_hz(int(rng.choice(notes_midi))))
            f0[s:e] = f
            env = np.ones(e - s) * float(rng.uniform(0.6, 1.0))
            env[:attack] *= np.linspace(0, 1, attack)
            env[-release:] *= np.linspace(1, 0, release)
            gain[s:e] = env
        t += note_len
    f0_track = f0.copy()
    if vibrato_cents > 0:
        tt = np.arange(n) / sample_rate
        f0_track = f0_track * 2.0 ** (vibrato_cents / 1200.0 * np.sin(2 * np.pi * 5.5 * tt))
    # Phase keeps running through silences so the synthesis never needs f0 > 0 everywhere.
    x = harmonic_tone(np.where(f0_track > 0, f0_track, 100.0), sample_rate, n_harmonics=n_harmonics)
    x = amplitude * x / (np.max(np.abs(x)) + 1e-12) * gain
    hop = 0.01
    times = np.arange(0.0, duration_s, hop)
    idx = np.minimum((times * sample_rate).astype(int), n - 1)
    # Ref is voiced only where the note is fully sounding (not in the attack/release ramps).
    ref = np.where(gain[idx] > 0.3 * np.max(gain), f0_track[idx], 0.0)
    return x.astype(np.float32), PitchTruth(times, ref)


def pad_chords(
    duration_s: float, sample_rate: int = 44100, *, seed: int = 0, amplitude: float = 0.3
) -> np.ndarray:
    """Slow three-note chords with soft attacks (an "other" stem)."""
    rng = np.random.default_rng(seed)
    n = round(duration_s * sample_rate)
    out = np.zeros(n)
    chord_len = 2.0
    roots = [48, 53, 55, 57]
    t = 0.0
    while t < duration_s:
        s = int(t * sample_rate)
        e = min(n, int((t + chord_len) * sample_rate))
        root = int(rng.choice(roots))
        seg = np.zeros(e - s)
        for iv in (0, 4, 7):
            seg += harmonic_tone(np.full(e - s, float(midi_to_hz(root + iv))), sample_rate, n_harmonics=4)
        env = np.minimum(1.0, np.arange(e - s) / (0.2 * sample_rate)) * np.minimum(
            1.0, (e - s - np.arange(e - s)) / (0.2 * sample_rate)
        )
        out[s:e] = seg * env
        t += chord_len
    out = amplitude * out / (np.max(np.abs(out)) + 1e-12)
    return out.astype(np.float32)


def to_stereo(x: np.ndarray, pan: float = 0.0) -> np.ndarray:
    """Constant-power pan of a mono signal into (n, 2); pan in [-1, 1]."""
    angle = (pan + 1.0) * np.pi / 4.0
    return np.stack([x * np.cos(angle), x * np.sin(angle)], axis=1).astype(np.float32) * np.float32(
        np.sqrt(2.0)
    )


def style_kit(sample_rate: int = 44100, *, kit: int = 1, seed: int = 0) -> np.ndarray:
    """A one-shot sample pack: kick, snare and hat of a kit at three velocities each, 0.6 s apart."""
    parts = []
    gap = int(0.6 * sample_rate)
    names: tuple[DrumName, ...] = ("kick", "snare", "hat")
    for name in names:
        for vel in (0.35, 0.65, 1.0):
            hit = drum_hit(name, sample_rate, kit=kit, velocity=vel * 0.9, seed=seed)
            seg = np.zeros(gap, dtype=np.float32)
            seg[: min(gap, hit.size)] = hit[:gap]
            parts.append(seg)
    return np.concatenate(parts)


def style_tone(
    sample_rate: int = 44100,
    *,
    f0_hz: float = 220.0,
    duration_s: float = 2.0,
    timbre: Literal["square", "fm", "organ"] = "square",
    amplitude: float = 0.5,
) -> np.ndarray:
    """A sustained pitched style sound with a timbre unlike the test stems' sawtooth-like harmonics."""
    n = round(duration_s * sample_rate)
    t = np.arange(n) / sample_rate
    if timbre == "square":
        x = sum(
            np.sin(2 * np.pi * k * f0_hz * t) / k for k in range(1, 16, 2) if k * f0_hz < 0.45 * sample_rate
        )
    elif timbre == "fm":
        x = np.sin(2 * np.pi * f0_hz * t + 2.5 * np.sin(2 * np.pi * 2 * f0_hz * t))
    else:
        x = sum(np.sin(2 * np.pi * k * f0_hz * t) * a for k, a in ((1, 1.0), (2, 0.8), (4, 0.6), (8, 0.5)))
    x = np.asarray(x, dtype=np.float64)
    fade_edges(x, int(0.01 * sample_rate))
    return (amplitude * x / (np.max(np.abs(x)) + 1e-12)).astype(np.float32)


def bright_lead(
    sample_rate: int = 44100,
    *,
    notes_midi: tuple[int, ...] = (60, 64, 67, 72),
    note_s: float = 0.6,
    n_harmonics: int = 40,
) -> np.ndarray:
    """Notes of a bright lead in a row: sawtooths through a 2-4 kHz resonance (a timbre unlike
    `harmonic_tone`'s 1/h harmonics), each note normalised, at half scale."""
    notes = []
    for midi in notes_midi:
        f0 = float(midi_to_hz(midi))
        t = np.arange(round(note_s * sample_rate)) / sample_rate
        tone = sum(
            np.sin(2 * np.pi * h * f0 * t) / h * (1.0 + 4.0 * np.exp(-(((h * f0 - 3000.0) / 900.0) ** 2)))
            for h in range(1, n_harmonics)
            if h * f0 < 0.45 * sample_rate
        )
        tone = np.asarray(tone, dtype=np.float64)
        fade_edges(tone, int(0.01 * sample_rate))
        notes.append(tone / np.max(np.abs(tone)))
    return (0.5 * np.concatenate(notes)).astype(np.float32)


def style_scale(
    sample_rate: int = 44100,
    *,
    notes_midi: tuple[int, ...] = (45, 52, 57, 64),
    note_s: float = 0.6,
    timbre: Literal["square", "fm", "organ"] = "fm",
) -> np.ndarray:
    """Several pitches of one timbre in a row (a small multi-sampled instrument)."""
    return np.concatenate(
        [
            style_tone(sample_rate, f0_hz=float(midi_to_hz(m)), duration_s=note_s, timbre=timbre)
            for m in notes_midi
        ]
    )


@dataclass
class SongTruth:
    drum_onsets_s: np.ndarray
    bass_f0: PitchTruth
    vocal_f0: PitchTruth


def synth_song(
    duration_s: float = 30.0, sample_rate: int = 44100, *, seed: int = 0
) -> tuple[dict[str, np.ndarray], SongTruth]:
    """Four stereo stems (drums, bass, vocals, other) of a simple song, plus the true onsets and f0."""
    drums, dtruth = drum_pattern(duration_s, sample_rate, kit=0, seed=seed)
    bass, btruth = note_line(duration_s, sample_rate, seed=seed + 1)
    vocals, vtruth = note_line(
        duration_s,
        sample_rate,
        notes_midi=[57, 60, 62, 64, 67, 69, 72],
        note_beats=1.0,
        legato=0.9,
        n_harmonics=8,
        vibrato_cents=30.0,
        amplitude=0.4,
        seed=seed + 2,
    )
    other = pad_chords(duration_s, sample_rate, seed=seed + 3)
    stems = {
        "drums": to_stereo(drums, 0.0),
        "bass": to_stereo(bass, 0.0),
        "vocals": to_stereo(vocals, 0.1),
        "other": to_stereo(other, -0.3),
    }
    return stems, SongTruth(dtruth.onset_times_s, btruth, vtruth)
