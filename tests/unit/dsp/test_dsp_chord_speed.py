"""The tonal renderer's shared and chunked work changes no sample (issue 11 item 7): a chord stem's voices
share what depends only on the style (trees, note spans, envelope-kept versions, grain phases), and the
grains are read in chunks whose size must not matter."""

from __future__ import annotations

import numpy as np
import pytest

import audiomixer.dsp.granular as granular
from audiomixer.dsp.analysis import analyse_stem
from audiomixer.dsp.grains import analyse_style_sound
from audiomixer_tools import signals as S

SR = 44100


def _bright_style() -> np.ndarray:
    """Two bright notes (A2, E3): sawtooths through a 2-4 kHz resonance, rich enough that reads far
    from their pitch come from envelope-kept versions of the style, one per transposition step."""
    return S.bright_lead(SR, notes_midi=(45, 52), note_s=0.8, n_harmonics=80)


def _line(midis: tuple[int, ...], note_s: float = 0.7) -> np.ndarray:
    """A single line of harmonic notes, several semitones apart (several transposition steps)."""
    parts = []
    for midi in midis:
        n = round(note_s * SR)
        tone = S.harmonic_tone(np.full(n, float(S.midi_to_hz(midi))), SR, n_harmonics=6)
        S.fade_edges(tone, int(0.02 * SR))
        parts.append(tone)
    x = np.concatenate(parts)
    return (0.3 * x / np.max(np.abs(x))).astype(np.float32)


def _chords() -> np.ndarray:
    """C major, F major and A minor triads around middle C, 1.5 s each."""
    n = round(1.5 * SR)
    out = []
    for chord in ((60, 64, 67), (60, 65, 69), (57, 60, 64)):
        seg = sum(S.harmonic_tone(np.full(n, float(S.midi_to_hz(m))), SR, n_harmonics=8) for m in chord)
        S.fade_edges(seg, int(0.03 * SR))
        out.append(seg)
    x = np.concatenate(out)
    return (0.3 * x / np.max(np.abs(x))).astype(np.float32)


@pytest.fixture(scope="module")
def style() -> tuple[np.ndarray, object]:
    lead = _bright_style()
    return lead, analyse_style_sound(lead, SR)


def test_the_style_is_read_through_several_envelope_kept_versions(style: tuple) -> None:
    """The precondition of the chunking test: the line's grains read from more than one version."""
    lead, table = style
    stem = _line((33, 40, 45, 50, 57, 62))
    prep = granular._TonalStyle(lead[:, None], SR, table.starts, table, 5292, use_pitch_mapping=True)
    assert prep.shifter.strength > 0
    versions: list[int] = []
    real = granular._TonalStyle.version

    def spy(self: granular._TonalStyle, step: int, shifted: bool) -> np.ndarray:
        versions.append(step if shifted else 0)
        return real(self, step, shifted)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(granular._TonalStyle, "version", spy)
        granular.render_stem(stem, SR, analyse_stem(stem, SR), lead, SR, table, seed=0)
    assert len(set(versions)) >= 3


@pytest.mark.parametrize("chunk_samples", [1 << 13, 1 << 15])
def test_the_rendered_line_does_not_depend_on_the_chunk_size(
    style: tuple, chunk_samples: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each grain reads its own transposition's version in whichever chunk it falls (a chunk's grains
    once took the versions of the first chunk's grains at the same place)."""
    lead, table = style
    stem = _line((33, 40, 45, 50, 57, 62))
    analysis = analyse_stem(stem, SR)
    monkeypatch.setattr(granular, "CHUNK_SAMPLES", 1 << 24)  # the whole stem in one chunk
    whole = granular.render_stem(stem, SR, analysis, lead, SR, table, seed=0)
    monkeypatch.setattr(granular, "CHUNK_SAMPLES", chunk_samples)
    chunked = granular.render_stem(stem, SR, analysis, lead, SR, table, seed=0)
    np.testing.assert_array_equal(chunked, whole)


def test_a_chord_stem_is_the_same_as_with_each_voice_prepared_alone(
    style: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sharing the style's preparation across a chord's voices changes no sample: the reference
    renders each voice from a preparation of its own, as one voice alone would."""
    lead, table = style
    stem = _chords()
    analysis = analyse_stem(stem, SR)
    shared = granular.render_stem(stem, SR, analysis, lead, SR, table, seed=5)
    real = granular._render_tonal
    preps: list[granular._TonalStyle] = []

    def alone(
        mono: np.ndarray, sr: int, part: object, prep: granular._TonalStyle, rng: object, **kw: bool
    ) -> np.ndarray:
        own = granular._TonalStyle(
            prep.style,
            prep.sr,
            prep.starts,
            prep.table,
            prep.length,
            use_pitch_mapping=kw["use_pitch_mapping"],
        )
        preps.append(own)
        return real(mono, sr, part, own, rng, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(granular, "_render_tonal", alone)
    reference = granular.render_stem(stem, SR, analysis, lead, SR, table, seed=5)
    assert len(preps) == 3  # one per note of the triads
    assert any(p._versions for p in preps)  # envelope-kept versions were used
    np.testing.assert_array_equal(shared, reference)


def test_a_chord_stem_s_voices_are_the_every_frame_estimate() -> None:
    """`chord_voices` reuses the decision pass's frames in its every-frame pass: the same voices as the
    estimate of every frame from scratch, to the last bit."""
    from audiomixer.dsp.polyphony import chord_voices, estimate_voices

    stem = _chords()
    voices = chord_voices(stem, SR)
    assert voices is not None
    reference = estimate_voices(stem, SR)
    assert voices.hop_s == reference.hop_s
    assert voices.polyphonic_share == reference.polyphonic_share
    np.testing.assert_array_equal(voices.f0_hz, reference.f0_hz)
    np.testing.assert_array_equal(voices.amplitude, reference.amplitude)
    assert (voices.f0_hz > 0).sum(axis=1).max() == 3
