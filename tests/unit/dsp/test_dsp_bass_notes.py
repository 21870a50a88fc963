"""Note-level bass pitch on known synthetic lines: plucked notes with rests, a sub-octave component, an
octave "pop" struck while the louder note before it still rings, attack glides and legato changes."""

from __future__ import annotations

import numpy as np

from audiomixer.dsp import analysis as A
from audiomixer_tools.metrics import raw_pitch_accuracy

SR = 44100


def _hz(midi: int) -> float:
    return float(440.0 * 2.0 ** ((midi - 69) / 12.0))


def _plucked(
    f0_hz: float,
    duration_s: float,
    *,
    amplitude: float,
    decay_s: float = 0.3,
    sub_octave: float = 0.0,
    click: float = 0.0,
) -> np.ndarray:
    """A plucked note: ten 1/k harmonics of f0_hz (plus, when `sub_octave` > 0, a sine of that relative
    amplitude an octave below, as a sampled slap bass can carry), an exponential decay, a 3 ms attack, a
    10 ms release and, when `click` > 0, a 4 ms noise burst of that peak at its start (a slap's fret
    click)."""
    t = np.arange(round(duration_s * SR)) / SR
    x = sum(np.sin(2 * np.pi * k * f0_hz * t) / k for k in range(1, 11))
    x = x + sub_octave * np.sin(2 * np.pi * 0.5 * f0_hz * t)
    env = amplitude * np.exp(-t / decay_s)
    env[: int(0.003 * SR)] *= np.linspace(0.0, 1.0, int(0.003 * SR))
    env[-int(0.01 * SR) :] *= np.linspace(1.0, 0.0, int(0.01 * SR))
    out = 0.25 * x * env
    if click > 0:
        n = int(0.004 * SR)
        burst = np.random.default_rng(round(f0_hz * 100)).standard_normal(n)
        out[:n] += click * burst * np.exp(-np.arange(n) / (0.001 * SR))
    return np.asarray(out)


Note = tuple[float, float, int, float, float]  # start_s, duration_s, midi, amplitude, sub_octave


def _line(
    notes: list[Note], duration_s: float, *, click: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(signal, truth times_s, truth f0_hz) of `notes`; notes at full amplitude (1.0) start with a click
    of peak `click`. The truth (10 ms grid) covers each note from 30 ms after its start to 10 ms before
    its end: the note's pitch, not where a frame grid puts its edges."""
    x = np.zeros(round(duration_s * SR))
    times = np.arange(0.0, duration_s, 0.01)
    f0 = np.zeros(times.size)
    for start, dur, midi, amp, sub in notes:
        note = _plucked(_hz(midi), dur, amplitude=amp, sub_octave=sub, click=click if amp >= 1.0 else 0.0)
        s = round(start * SR)
        x[s : s + note.size] += note
        f0[(times >= start + 0.03) & (times < start + dur - 0.01)] = _hz(midi)
    return x.astype(np.float32), times, f0


def _note_medians(a: A.StemAnalysis, notes: list[Note]) -> list[float]:
    """Cents from each note's pitch to the median analysis f0 over its middle (0 Hz counts as 2400)."""
    out = []
    t = a.frame_times_s
    for start, dur, midi, _amp, _sub in notes:
        f = a.f0_hz[(t >= start + 0.03) & (t < start + dur - 0.01)]
        est = float(np.median(f)) if f.size else 0.0
        out.append(2400.0 if est <= 0 else float(1200 * np.log2(est / _hz(midi))))
    return out


def test_slapped_notes_with_a_sub_octave_read_at_their_pitch() -> None:
    # A2 G2 D2 C2 with a sub-octave at -4.4 dB (YIN's period is then two of the note's), and E1 without,
    # 120 ms each with rests between.
    pattern = [(45, 0.6), (43, 0.6), (28, 0.0), (38, 0.6), (36, 0.6), (28, 0.0)]
    notes = [(0.1 + 0.29 * i, 0.12, m, 1.0, sub) for i, (m, sub) in enumerate(pattern * 3)]
    x, times, f0 = _line(notes, 5.5)
    a = A.analyse_stem(x, SR)
    assert raw_pitch_accuracy(times, f0, a.frame_times_s, a.f0_hz) >= 0.9
    off = _note_medians(a, notes)
    assert max(abs(c) for c in off) < 50, np.round(off)


def test_octave_pop_struck_while_the_louder_note_rings() -> None:
    # A thumbed E1 with its fret click out of a rest, then at once a pop an octave up 10 dB quieter: the
    # level falls across the pop's onset as it does at a release, and its flux is under a tenth of the
    # thumbs' (as on the bench corpus' disco line).
    notes: list[Note] = []
    for i in range(8):
        t0 = 0.1 + 0.5 * i
        notes += [(t0, 0.15, 28, 1.0, 0.0), (t0 + 0.15, 0.12, 40, 0.3, 0.0)]
    x, times, f0 = _line(notes, 4.3, click=2.0)
    a = A.analyse_stem(x, SR)
    assert raw_pitch_accuracy(times, f0, a.frame_times_s, a.f0_hz) >= 0.9
    off = _note_medians(a, notes)
    assert max(abs(c) for c in off) < 50, np.round(off)


def test_low_line_down_to_b0_with_rests() -> None:
    # B0 (31 Hz, a five-string's lowest) to A1, 250 ms plucked notes with 150 ms rests.
    notes = [(0.1 + 0.4 * i, 0.25, m, 1.0, 0.0) for i, m in enumerate([23, 28, 31, 33, 23, 26, 28, 33] * 2)]
    x, times, f0 = _line(notes, 6.6)
    a = A.analyse_stem(x, SR)
    assert raw_pitch_accuracy(times, f0, a.frame_times_s, a.f0_hz) >= 0.95
    # The middle of every rest (50-100 ms after a note's end) is unvoiced.
    phase = (a.frame_times_s - 0.1) % 0.4
    rests = (phase > 0.30) & (phase < 0.35) & (a.frame_times_s < 6.4)
    assert rests.sum() >= 60
    assert not np.any(a.f0_hz[rests] > 0)


def _frames(pitches_hz: list[float], depth: float = 0.1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    f0 = np.asarray(pitches_hz, np.float64)
    return f0, np.full(f0.size, depth), np.full(f0.size, -20.0)


def test_note_split_between_octaves_keeps_its_pitch_class() -> None:
    # Half the confident frames read the sub-octave, and the decay's frames are not confident: the note
    # is D2 or D1 throughout, never the tritone between them.
    f0, ap, level = _frames([36.7] * 6 + [73.4] * 6 + [60.0] * 4)
    ap[-4:] = 0.8
    out, voiced, _ = A.note_level_f0(f0, ap, level, np.array([0]))
    assert voiced.all()
    cents_from_d = 1200 * np.log2(out / 73.4)
    assert np.all(np.abs(cents_from_d - 1200 * np.round(cents_from_d / 1200)) < 10), out


def test_attack_glide_is_no_legato_change_but_a_held_new_pitch_is() -> None:
    # E1 whose frames 5-6 read 130 cents flat (a plucked string's glide), then from frame 20 a legato
    # change to A1 held for 8 frames.
    f0, ap, level = _frames([41.2] * 5 + [38.2] * 2 + [41.2] * 13 + [55.0] * 8)
    out, _, _ = A.note_level_f0(f0, ap, level, np.array([0]))
    np.testing.assert_allclose(out[:20], 41.2, rtol=0.01)
    np.testing.assert_allclose(out[20:], 55.0, rtol=0.01)


def test_note_pitch_comes_from_its_steady_part() -> None:
    # A short note whose onset came early: its first four frames still hear the previous G1 (their
    # windows reach back before the note), the three after are E2. The note is E2 throughout.
    f0, ap, level = _frames([49.0] * 4 + [82.4] * 3)
    out, voiced, _ = A.note_level_f0(f0, ap, level, np.array([0]))
    assert voiced.all()
    np.testing.assert_allclose(out, 82.4, rtol=0.01)


def test_short_slapped_note_is_voiced_but_noise_is_not() -> None:
    # A short slapped note's frames reach YIN troughs of 0.43-0.55 at the right period; noise sits above
    # 0.6 with a random period.
    f0, ap, level = _frames([73.4] * 10, depth=0.47)
    out, voiced, _ = A.note_level_f0(f0, ap, level, np.array([0]))
    assert voiced.all()
    np.testing.assert_allclose(out, 73.4, rtol=0.01)
    noise_f0 = np.random.default_rng(0).uniform(40.0, 800.0, 10)
    _, voiced, _ = A.note_level_f0(noise_f0, np.full(10, 0.65), np.full(10, -20.0), np.array([0]))
    assert not voiced.any()


def _spectrum_segment(partials: dict[float, float], seconds: float = 0.2) -> np.ndarray:
    t = np.arange(round(seconds * A.ANALYSIS_SR)) / A.ANALYSIS_SR
    return np.asarray(sum(amp * np.sin(2 * np.pi * f * t) for f, amp in partials.items()))


def test_octave_check_moves_only_a_lone_sub_octave_up() -> None:
    up = A.octave_checked_pitch
    # A2's harmonic series with a lone sine at 55 Hz: the note is A2.
    a2 = _spectrum_segment({55.0: 0.6} | {110.0 * k: 1.0 / k for k in range(1, 8)})
    assert up(a2, A.ANALYSIS_SR, np.log2(55.0)) == np.log2(55.0) + 1
    # An acoustic-bass-like A1: a strong fundamental and weak odd harmonics is still A1.
    a1 = {55.0 * k: amp for k, amp in enumerate([1.0, 0.5, 0.02, 0.3, 0.015, 0.2, 0.01, 0.1], start=1)}
    assert up(_spectrum_segment(a1), A.ANALYSIS_SR, np.log2(55.0)) == np.log2(55.0)
    # A pure sine, and a tone above the bass register with weak odd harmonics, are left alone.
    assert up(_spectrum_segment({55.0: 1.0}), A.ANALYSIS_SR, np.log2(55.0)) == np.log2(55.0)
    high = _spectrum_segment({262.0: 0.6} | {524.0 * k: 1.0 / k for k in range(1, 6)})
    assert up(high, A.ANALYSIS_SR, np.log2(262.0)) == np.log2(262.0)
