"""Chord stems: multi-pitch estimation (dsp/polyphony.py) and one grain voice per note in the granular
engine, on synthetic chords whose notes are known."""

from __future__ import annotations

import numpy as np
import pytest

from audiomixer.dsp.analysis import analyse_stem
from audiomixer.dsp.grains import analyse_style_sound
from audiomixer.dsp.granular import render_stem
from audiomixer.dsp.polyphony import chord_voices, estimate_voices, voice_analyses
from audiomixer_tools import signals as S
from audiomixer_tools.metrics import envelope_correlation, mfcc_distance

SR = 44100
CHORD_S = 2.0
# Two bars each of C major, F major (second inversion) and A minor, around middle C: the register of the
# chord stems that a bright lead styled 1.5 octaves too low on real songs.
CHORDS = ((60, 64, 67), (60, 65, 69), (57, 60, 64), (60, 64, 67))


def _chord_stem() -> np.ndarray:
    """Piano-like chords: eight harmonics at 1/h, each note at its own level, soft attack and release."""
    n_chord = round(CHORD_S * SR)
    out = []
    for chord in CHORDS:
        seg = np.zeros(n_chord)
        for level, note in zip((1.0, 0.8, 0.9), chord, strict=True):
            f0 = np.full(n_chord, float(S.midi_to_hz(note)))
            seg += level * S.harmonic_tone(f0, SR, n_harmonics=8)
        S.fade_edges(seg, int(0.03 * SR))
        out.append(seg)
    x = np.concatenate(out)
    return (0.3 * x / np.max(np.abs(x))).astype(np.float32)


def _bright_lead() -> np.ndarray:
    """A bright lead in the chords' register (C4..C5): a sawtooth through a 2-4 kHz resonance, a timbre
    unlike the stem's 1/h harmonics."""
    return S.bright_lead(SR)


def _frames_inside_chords(times_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mask of frames well inside a chord, index of that chord)."""
    which = np.minimum((times_s // CHORD_S).astype(int), len(CHORDS) - 1)
    inside = (
        (times_s % CHORD_S > 0.25) & (times_s % CHORD_S < CHORD_S - 0.25) & (times_s < len(CHORDS) * CHORD_S)
    )
    return inside, which


@pytest.fixture(scope="module")
def chord_case() -> dict[str, object]:
    stem = _chord_stem()
    lead = _bright_lead()
    analysis = analyse_stem(stem, SR)
    table = analyse_style_sound(lead, SR)
    out = render_stem(stem, SR, analysis, lead, SR, table, seed=0)
    return {"stem": stem, "lead": lead, "analysis": analysis, "out": out}


def test_every_note_of_a_chord_is_found_on_its_frames() -> None:
    voices = estimate_voices(_chord_stem(), SR)
    assert voices.is_polyphonic
    times = np.arange(voices.f0_hz.shape[0]) * voices.hop_s
    inside, which = _frames_inside_chords(times)
    found = []
    for i in np.nonzero(inside)[0]:
        f0 = voices.f0_hz[i][voices.f0_hz[i] > 0]
        midi = 69.0 + 12.0 * np.log2(f0 / 440.0)
        # Each note within 30 cents, and nothing else (no sub-octave, no harmonic read as a note).
        found.append(len(midi) == 3 and all(np.min(np.abs(midi - note)) < 0.3 for note in CHORDS[which[i]]))
    assert np.mean(found) >= 0.9


@pytest.mark.parametrize(
    "line",
    [
        pytest.param(lambda: S.note_line(8.0, SR, seed=3)[0], id="bass-line"),
        pytest.param(lambda: S.note_line(8.0, SR, notes_midi=[60, 62, 64, 67, 69, 72], seed=4)[0], id="lead"),
        pytest.param(lambda: S.style_tone(SR, f0_hz=110.0, duration_s=4.0, timbre="square"), id="held-note"),
    ],
)
def test_a_single_line_is_not_taken_for_chords(line: object) -> None:
    assert callable(line)
    assert chord_voices(line(), SR) is None


def test_each_voice_sounds_where_its_note_does_and_is_silent_elsewhere() -> None:
    stem = _chord_stem()
    analysis = analyse_stem(stem, SR)
    voices = chord_voices(stem, SR)
    assert voices is not None
    parts = voice_analyses(analysis, voices)
    assert len(parts) == 3
    times = analysis.frame_times_s
    inside, which = _frames_inside_chords(times)
    for k, part in enumerate(parts):
        assert part.f0_hz.shape == analysis.f0_hz.shape
        assert np.all(part.silence[part.f0_hz == 0])
        sung = inside & (part.f0_hz > 0)
        midi = 69.0 + 12.0 * np.log2(part.f0_hz[sung] / 440.0)
        # Voice k is the chord's k-th note from the bottom.
        target = np.array([sorted(CHORDS[c])[k] for c in which[sung]])
        assert np.mean(np.abs(midi - target) < 0.3) >= 0.9
        assert np.mean(part.f0_hz[inside] > 0) >= 0.9
    # The voices share the stem's level: together about the stem's energy.
    together = np.sqrt(sum(p.rms.astype(np.float64) ** 2 for p in parts))
    loud = inside & ~analysis.silence
    assert np.allclose(together[loud], analysis.rms[loud], rtol=0.05)


def _note_level_db(x: np.ndarray, f_hz: float, start_s: float, end_s: float) -> float:
    """Level (dB) of the strongest spectral peak within 1.5 % of f_hz, against the segment's strongest."""
    seg = x[round(start_s * SR) : round(end_s * SR)]
    spec = np.abs(np.fft.rfft(seg * np.hanning(seg.size)))
    freqs = np.fft.rfftfreq(seg.size, 1.0 / SR)
    near = np.abs(freqs - f_hz) <= 0.015 * f_hz
    return float(20.0 * np.log10(spec[near].max() / spec.max()))


def test_a_chord_styled_with_a_bright_lead_plays_each_note_in_the_lead_s_timbre(chord_case: dict) -> None:
    stem, lead, out = chord_case["stem"], chord_case["lead"], chord_case["out"]
    assert out.shape == stem.shape
    for c, chord in enumerate(CHORDS):
        a, b = c * CHORD_S + 0.3, (c + 1) * CHORD_S - 0.3
        for note in chord:
            assert _note_level_db(out, float(S.midi_to_hz(note)), a, b) > -20.0, (c, note)
        # Nothing sounds below the chord: no virtual pitch an octave or more under its lowest note.
        seg = out[round(a * SR) : round(b * SR)]
        power = np.abs(np.fft.rfft(seg * np.hanning(seg.size))) ** 2
        freqs = np.fft.rfftfreq(seg.size, 1.0 / SR)
        below = power[freqs < 0.9 * float(S.midi_to_hz(min(chord)))].sum() / power.sum()
        assert below < 0.05, (c, below)
    # The timbre moves well toward the lead's (rendered at the chord's virtual pitch, two octaves down, it
    # barely moved: 300 against the source's 310), and the stem's dynamics are kept.
    assert mfcc_distance(out, lead, SR) < 0.5 * mfcc_distance(stem, lead, SR)
    assert envelope_correlation(stem, out, SR) >= 0.8


def test_drums_forced_to_tonal_stay_one_voice(monkeypatch: pytest.MonkeyPatch) -> None:
    """Drum noise reads as several "notes" on most frames: voices per note would follow noise, so a stem
    the analysis calls percussive is rendered as one voice even when the user forces tonal."""
    import audiomixer.dsp.granular as granular

    # Hi-hat-like noise bursts, four a second.
    t = np.arange(6 * SR)
    noise = np.random.default_rng(0).standard_normal(t.size)
    drums = (0.1 * noise * np.exp(-(t % (SR // 4)) / (0.05 * SR))).astype(np.float32)
    analysis = analyse_stem(drums, SR)
    assert analysis.kind == "percussive"
    assert chord_voices(drums, SR) is not None  # what the estimator alone says of drums
    tone = S.style_tone(SR, f0_hz=220.0, duration_s=2.0, timbre="square")
    table = analyse_style_sound(tone, SR)
    forced = render_stem(drums, SR, analysis, tone, SR, table, mode="tonal", seed=0)
    monkeypatch.setattr(granular, "chord_voices", lambda *_args: None)
    one_voice = render_stem(drums, SR, analysis, tone, SR, table, mode="tonal", seed=0)
    np.testing.assert_array_equal(forced, one_voice)


def test_a_chord_with_its_octave_doubled_keeps_its_root() -> None:
    """C4 E4 G4 C5, the doubling loudest (as a guitar or organ voicing often is): its pick takes the root's
    even partials, yet the voices are the triad, root included, and the doubling is the note left out."""
    n = round(4.0 * SR)
    x = np.zeros(n)
    for level, note in zip((0.7, 0.8, 0.8, 1.0), (60, 64, 67, 72), strict=True):
        x += level * S.harmonic_tone(np.full(n, float(S.midi_to_hz(note))), SR, n_harmonics=8)
    voices = estimate_voices((0.3 * x / np.max(np.abs(x))).astype(np.float32), SR)
    inside = (np.arange(voices.f0_hz.shape[0]) * voices.hop_s > 0.3) & (
        np.arange(voices.f0_hz.shape[0]) * voices.hop_s < 3.7
    )
    midi = 69.0 + 12.0 * np.log2(np.maximum(voices.f0_hz[inside], 1e-9) / 440.0)
    assert np.mean(np.all(np.abs(midi - np.array([60, 64, 67])) < 0.3, axis=1)) >= 0.9
