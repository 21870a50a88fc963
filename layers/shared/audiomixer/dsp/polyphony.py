"""Multi-pitch estimation of polyphonic tonal stems (chords, pads, strummed or picked guitars).

A single-f0 tracker run on a chord reports the chord's common period, a virtual pitch an octave or more
below its lowest note (on the corpus of `audiomixer bench quality`, chords of C4..B5 came out at a median
131-165 Hz), so a chord stem used to be re-rendered as one voice 1.5 octaves below what it plays. Here,
per frame, the notes themselves: harmonic-sum salience over a log-frequency grid with iterative
estimation and cancellation (Klapuri, "Multiple fundamental frequency estimation by summing harmonic
amplitudes", ISMIR 2006): the most salient pitch is taken, its harmonics are removed from the spectrum,
and the next is sought, up to MAX_NOTES. The granular engine then renders one grain voice per note, up to
MAX_VOICES of them (an octave doubling is the first note left out).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import sparse
from scipy.ndimage import median_filter

from .analysis import SILENCE_DB, StemAnalysis, to_mono
from .audio_io import resample

MULTIPITCH_SR = 11025
WINDOW = 2048  # 186 ms: resolves semitones down to C2 through the harmonics
N_FFT = WINDOW  # 5.4 Hz bins (zero padding bought no accuracy on the corpus and cost twice the time)
HOP_S = 512 / MULTIPITCH_SR  # 46 ms, four analysis hops: chords change slower than that
MIDI_MIN, MIDI_MAX = 24.0, 96.0  # C1 (33 Hz) .. C7 (2093 Hz): a bass line is one voice, not its harmonics
CANDIDATES_PER_SEMITONE = 3  # refined between candidates by a parabola
N_HARMONICS = 10  # summed into a candidate's salience
# Klapuri's harmonic weights g(f, h) = (f + ALPHA) / (h f + BETA): higher harmonics count less, so that a
# note's sub-octave (which collects only its even harmonics) never outscores it.
WEIGHT_ALPHA_HZ, WEIGHT_BETA_HZ = 27.0, 320.0
# A harmonic is read over +-HARMONIC_SPREAD_BINS around its place (mistuning, inharmonicity), tapered.
HARMONIC_SPREAD_BINS = 2
# A chosen note's partials are cancelled within +-5 bins (+-27 Hz): a Hann window's main lobe (+-2 bins)
# and some mistuning. (A width growing with frequency, for a stiff string's sharp partials, also took
# other chord notes' partials: lower note recall on the corpus.)
CANCEL_HZ = 5 * MULTIPITCH_SR / N_FFT
# Notes sought per frame, and voices kept: a chord's four notes are often a triad and an octave doubling
# (whose pick cancels the root's even partials, so the root is found last); the doubling is dropped,
# never the root.
MAX_NOTES = 4
MAX_VOICES = 3
# A further note counts when its salience is at least this share of the frame's strongest note's.
VOICE_MIN_RELATIVE_SALIENCE = 0.4
VOICE_MIN_RELATIVE_SALIENCE_BELOW_OCTAVE = 0.15
# A stem plays chords when two or more notes sound on at least POLYPHONIC_SHARE of its sounding frames.
# Measured on the corpus of `audiomixer bench quality` (decision grid): chord stems (clavinet, overdriven,
# distorted and clean guitars, piano, pad, strings, organ, e-piano) 1.0; bass lines 0.0-0.49 (a slap
# bass's partials), leads 0.10-0.36; its drums 0.83-1.0 (noise), hence chords only on tonal stems.
POLYPHONIC_SHARE = 0.8
# A chord's notes lie within two octaves of its strongest (a keyboard or guitar voicing): further
# "notes" are a low note's upper harmonics or another part's bleed.
MAX_SPREAD_SEMITONES = 24.0
MEDIAN_FRAMES = 5  # per-voice pitch smoothing (~0.1 s): a note's pitch, not a frame's jitter
# Spectral whitening (Klapuri's): each band's magnitude is scaled by its RMS to the power
# WHITENING_NU - 1, so a strong formant region (an overdriven guitar's 1-2 kHz) does not outscore the
# notes' fundamentals.
WHITENING_NU = 0.33
WHITENING_BANDS = 30
WHITENING_MIN_HZ, WHITENING_MAX_HZ = 40.0, 5000.0
DECISION_FRAME_STEP = 8  # chords or a single line is decided on frames 372 ms apart
BLOCK_FRAMES = 1024  # bounds the spectra held at once whatever the stem's length


@dataclass(frozen=True)
class Voices:
    """Simultaneous notes of a stem on a frame grid, lowest note first.

    Attributes
    ----------
    f0_hz : np.ndarray
        (frames, MAX_VOICES) pitch of each voice in Hz, 0 where that voice is silent. Voice 0 is the
        frame's lowest sounding note, voice 1 the next, and so on.
    amplitude : np.ndarray
        (frames, MAX_VOICES) each voice's share of the frame's amplitude (0..1, the shares of the sounding
        voices sum to 1).
    hop_s : float
        Seconds between frames; frame i is centred at i * hop_s.
    polyphonic_share : float
        Share of the sounding frames on which two or more notes sound.
    """

    f0_hz: np.ndarray
    amplitude: np.ndarray
    hop_s: float
    polyphonic_share: float

    @property
    def is_polyphonic(self) -> bool:
        """Whether the stem plays chords (render one voice per note) rather than one line."""
        return self.polyphonic_share >= POLYPHONIC_SHARE

    def on_grid(self, hop_s: float, n_frames: int) -> Voices:
        """The same voices on another frame grid (nearest frame)."""
        src = np.clip(np.round(np.arange(n_frames) * hop_s / self.hop_s).astype(np.int64), 0, None)
        src = np.minimum(src, max(0, self.f0_hz.shape[0] - 1))
        if self.f0_hz.shape[0] == 0:
            empty = np.zeros((n_frames, self.f0_hz.shape[1]))
            return Voices(empty, empty.copy(), hop_s, self.polyphonic_share)
        return Voices(self.f0_hz[src], self.amplitude[src], hop_s, self.polyphonic_share)


def _candidate_hz() -> np.ndarray:
    midi = np.arange(MIDI_MIN, MIDI_MAX + 1e-9, 1.0 / CANDIDATES_PER_SEMITONE)
    return np.asarray(440.0 * 2.0 ** ((midi - 69.0) / 12.0))


def _salience_matrix(candidates_hz: np.ndarray, n_bins: int, bin_hz: float) -> sparse.csr_matrix:
    """(bins, candidates): salience = magnitude spectrum @ this, the weighted sum of each candidate's
    harmonic amplitudes, each read with a triangular taper over +-HARMONIC_SPREAD_BINS."""
    spread = HARMONIC_SPREAD_BINS + 1.0
    offsets = np.arange(-HARMONIC_SPREAD_BINS, HARMONIC_SPREAD_BINS + 2)
    harmonics = np.arange(1, N_HARMONICS + 1)
    pos = candidates_hz[:, None] * harmonics[None, :] / bin_hz  # (candidates, harmonics)
    weight = (candidates_hz[:, None] + WEIGHT_ALPHA_HZ) / (
        harmonics[None, :] * candidates_hz[:, None] + WEIGHT_BETA_HZ
    )
    bins = np.floor(pos)[:, :, None] + offsets[None, None, :]
    taper = np.clip(1.0 - np.abs(bins - pos[:, :, None]) / spread, 0.0, None) * weight[:, :, None]
    taper[(bins < 0) | (bins >= n_bins) | (pos[:, :, None] >= n_bins - 1)] = 0.0
    cols = np.broadcast_to(np.arange(candidates_hz.size)[:, None, None], bins.shape)
    keep = taper > 0
    return sparse.csr_matrix(
        (taper[keep], (bins[keep].astype(np.int64), cols[keep])), shape=(n_bins, candidates_hz.size)
    )


def _whitening_matrices(n_bins: int, bin_hz: float) -> tuple[sparse.csr_matrix, sparse.csr_matrix]:
    """(bins, bands) triangular band weights on the ERB scale, normalised to sum 1 per band, and
    (bands, bins) linear interpolation from band centres back to bins."""

    def erb(f: np.ndarray) -> np.ndarray:
        return np.asarray(21.4 * np.log10(1.0 + 0.00437 * f))

    def erb_inv(e: np.ndarray) -> np.ndarray:
        return np.asarray((10 ** (e / 21.4) - 1.0) / 0.00437)

    lo_erb, hi_erb = erb(np.array(WHITENING_MIN_HZ)), erb(np.array(WHITENING_MAX_HZ))
    edges = erb_inv(np.linspace(lo_erb, hi_erb, WHITENING_BANDS + 2))
    freqs = np.arange(n_bins) * bin_hz
    bands = np.zeros((n_bins, WHITENING_BANDS))
    for b in range(WHITENING_BANDS):
        lo, mid, hi = edges[b], edges[b + 1], edges[b + 2]
        rise = (freqs - lo) / (mid - lo)
        fall = (hi - freqs) / (hi - mid)
        bands[:, b] = np.clip(np.minimum(rise, fall), 0.0, None)
    bands /= np.maximum(bands.sum(axis=0, keepdims=True), 1e-12)
    centres = edges[1:-1]
    back = np.zeros((WHITENING_BANDS, n_bins))
    pos = np.interp(freqs, centres, np.arange(WHITENING_BANDS))
    i0 = np.minimum(pos.astype(np.int64), WHITENING_BANDS - 2)
    frac = np.clip(pos - i0, 0.0, 1.0)
    back[i0, np.arange(n_bins)] = 1.0 - frac
    back[i0 + 1, np.arange(n_bins)] += frac
    return sparse.csr_matrix(bands.astype(np.float32)), sparse.csr_matrix(back.astype(np.float32))


def _whiten(mag: np.ndarray, bands: sparse.csr_matrix, back: sparse.csr_matrix) -> np.ndarray:
    """Klapuri's spectral whitening of (frames, bins) magnitudes."""
    sigma = np.sqrt(np.maximum(np.asarray(bands.T @ (mag * mag).T).T, 1e-20))
    return np.asarray(mag * np.asarray(back.T @ (sigma ** (WHITENING_NU - 1.0)).T).T, np.float32)


def _magnitudes(y: np.ndarray, frames: np.ndarray, hop: int) -> tuple[np.ndarray, np.ndarray]:
    """(frames, bins) magnitude spectra and RMS levels of the frames centred at `frames` * `hop`."""
    pad = WINDOW // 2
    # Frames read from a zero-padded copy: zeros before the start and past the end, no index arrays.
    last = int(frames.max(initial=0)) * hop + WINDOW
    padded = np.zeros(max(last, y.size + pad), y.dtype)
    padded[pad : pad + y.size] = y
    cut = np.lib.stride_tricks.sliding_window_view(padded, WINDOW)[frames * hop]
    rms = np.sqrt(np.einsum("ij,ij->i", cut, cut) / WINDOW)
    window = np.hanning(WINDOW + 1)[:-1].astype(np.float32)
    return np.abs(np.fft.rfft(cut * window, N_FFT, axis=1)).astype(np.float32), rms


def estimate_voices(
    samples: np.ndarray,
    sample_rate: int,
    *,
    max_notes: int = MAX_NOTES,
    max_voices: int = MAX_VOICES,
    frame_step: int = 1,
) -> Voices:
    """Estimate the notes sounding in each frame of a tonal stem.

    Parameters
    ----------
    samples : np.ndarray
        The stem, (n,) or (n, channels) float at `sample_rate`.
    sample_rate : int
        Its sample rate in Hz.
    max_notes : int
        Most simultaneous notes sought per frame.
    max_voices : int
        Most notes reported per frame (octave doublings, then the least salient, are left out).
    frame_step : int
        Analyse every `frame_step`-th frame only (a cheaper, coarser look: HOP_S * frame_step apart).

    Returns
    -------
    Voices
        Per frame up to `max_voices` notes, lowest first, with their amplitude shares.
    """
    y = resample(to_mono(samples), sample_rate, MULTIPITCH_SR)
    return _estimate(y, max_notes=max_notes, max_voices=max_voices, frame_step=frame_step)


def _octave_above(f0: np.ndarray) -> np.ndarray:
    """(notes, frames, notes) bool: note j sounds one or two octaves (within half a semitone) above note k
    of the same frame, at [j, :, k]."""
    midi = np.where(f0 > 0, 12.0 * np.log2(np.maximum(f0, 1e-9) / 440.0), np.nan)
    interval = midi.T[:, :, None] - midi[None, :, :]  # [j, frame, k] = midi_j - midi_k
    return np.asarray(
        (interval > 6.0) & (interval < 30.0) & (np.abs(interval - 12.0 * np.round(interval / 12.0)) < 0.5)
    )


def _keep_voices(f0: np.ndarray, sal: np.ndarray, max_voices: int) -> tuple[np.ndarray, np.ndarray]:
    """(f0, salience) of at most `max_voices` notes per frame, lowest first: where more sound, a note an
    octave (or two) above another goes first, then the least salient."""
    doubling = _octave_above(f0).any(axis=2).T  # [frame, j]: note j doubles a lower note
    # Rank: sounding notes by (not a doubling, salience); keep the best max_voices.
    score = np.where(f0 > 0, sal + np.where(doubling, 0.0, 1.0 + sal.max(initial=0.0)), -np.inf)
    keep = np.argsort(-score, axis=1, kind="stable")[:, :max_voices]
    f0, sal = np.take_along_axis(f0, keep, axis=1), np.take_along_axis(sal, keep, axis=1)
    order = np.argsort(np.where(f0 > 0, f0, np.inf), axis=1)
    return np.take_along_axis(f0, order, axis=1), np.take_along_axis(sal, order, axis=1)


def _frame_notes(
    y: np.ndarray, frames: np.ndarray, hop: int, *, max_notes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(f0, salience) of the `max_notes` most salient notes, by iterative estimation and cancellation,
    and the RMS level of each frame centred at `frames` * `hop` of a mono signal at MULTIPITCH_SR. Each
    frame's figures depend on that frame alone."""
    n_frames = frames.size
    f0 = np.zeros((n_frames, max_notes))
    sal = np.zeros((n_frames, max_notes))
    level = np.zeros(n_frames)
    candidates = _candidate_hz()
    n_bins = N_FFT // 2 + 1
    bin_hz = MULTIPITCH_SR / N_FFT
    weights = _salience_matrix(candidates, n_bins, bin_hz)
    bin_freqs = (np.arange(n_bins) * bin_hz).astype(np.float32)
    bands, back = _whitening_matrices(n_bins, bin_hz)
    for start in range(0, n_frames, BLOCK_FRAMES):
        block = slice(start, min(n_frames, start + BLOCK_FRAMES))
        mag, level[block] = _magnitudes(y, frames[block], hop)
        # Bins-major, as the sparse product reads it (it would copy a transposed view every pass).
        mag_t = np.ascontiguousarray(_whiten(mag, bands, back).T)
        rows = np.arange(mag_t.shape[1])
        for v in range(max_notes):
            salience = np.asarray(weights.T @ mag_t).T  # (frames, candidates)
            if v:
                spread = np.abs(12.0 * np.log2(candidates[None, :] / f0[block, :1]))
                salience[spread > MAX_SPREAD_SEMITONES] = 0.0
            best = salience.argmax(axis=1)
            # The peak's place between candidates from a parabola through it and its neighbours.
            lo = salience[rows, np.maximum(best - 1, 0)]
            mid = salience[rows, best]
            hi = salience[rows, np.minimum(best + 1, candidates.size - 1)]
            curve = lo - 2.0 * mid + hi
            shift = np.clip(
                np.where(curve < 0, 0.5 * (lo - hi) / np.where(curve < 0, curve, -1.0), 0.0), -0.5, 0.5
            )
            f0[block, v] = candidates[best] * 2.0 ** (shift / (12.0 * CANDIDATES_PER_SEMITONE))
            sal[block, v] = mid
            # Cancel the chosen note's harmonics, all of them up to Nyquist (a low note's upper partials,
            # raised by the whitening, would read as high notes), so that the next pick is another note.
            chosen = f0[block, v].astype(np.float32)[None, :]
            nearest = np.maximum(np.round(bin_freqs[:, None] / chosen), 1.0) * chosen
            mag_t[np.abs(bin_freqs[:, None] - nearest) <= CANCEL_HZ] = 0.0
    return f0, sal, level


def _voices(
    f0: np.ndarray,
    sal: np.ndarray,
    level: np.ndarray,
    *,
    max_voices: int,
    hop_s: float,
    silence_db: float = SILENCE_DB,
) -> Voices:
    """The voices of a stem from its frames' notes (`_frame_notes`, on frames `hop_s` apart); frames whose
    level is under `silence_db` (dBFS) hold none."""
    n_frames = f0.shape[0]
    # A note counts when it is salient beside the frame's strongest, in a frame above silence; a note an
    # octave below a note already taken kept only its odd partials, and is judged on a lower bar.
    strongest = sal[:, :1]
    audible = level[:, None] > 10 ** (silence_db / 20.0)
    bar = np.where(
        _octave_above(f0).any(axis=0), VOICE_MIN_RELATIVE_SALIENCE_BELOW_OCTAVE, VOICE_MIN_RELATIVE_SALIENCE
    )
    present = (sal >= bar * strongest) & (strongest > 0) & audible
    f0 = np.where(present, f0, 0.0)
    sal = np.where(present, sal, 0.0)
    # Lowest note first (octave doublings left out), then each voice's pitch smoothed over a few frames
    # where it sounds throughout.
    f0, sal = _keep_voices(f0, sal, max_voices)
    if n_frames >= MEDIAN_FRAMES:
        smooth = median_filter(f0, size=(MEDIAN_FRAMES, 1), mode="nearest")
        steady = median_filter((f0 > 0).astype(np.uint8), size=(MEDIAN_FRAMES, 1), mode="nearest") > 0
        f0 = np.where((f0 > 0) & steady & (smooth > 0), smooth, f0)
    total = sal.sum(axis=1, keepdims=True)
    amplitude = np.where(total > 0, sal / np.maximum(total, 1e-30), 0.0)
    n_notes = (f0 > 0).sum(axis=1)
    sounding = n_notes > 0
    share = float(np.mean(n_notes[sounding] >= 2)) if sounding.any() else 0.0
    return Voices(f0, amplitude, hop_s, share)


def _estimate(y: np.ndarray, *, max_notes: int, max_voices: int, frame_step: int) -> Voices:
    """`estimate_voices` on a mono signal at MULTIPITCH_SR."""
    hop = round(HOP_S * MULTIPITCH_SR)
    frames = np.arange(0, 1 + y.size // hop if y.size else 0, max(1, frame_step))
    f0, sal, level = _frame_notes(y, frames, hop, max_notes=max_notes)
    return _voices(f0, sal, level, max_voices=max_voices, hop_s=HOP_S * max(1, frame_step))


def chord_voices(samples: np.ndarray, sample_rate: int, *, silence_db: float = SILENCE_DB) -> Voices | None:
    """The notes of a stem that plays chords, or None for a single line (a bass, a lead, a voice).

    Parameters
    ----------
    samples : np.ndarray
        The stem, (n,) or (n, channels) float at `sample_rate`.
    sample_rate : int
        Its sample rate in Hz.
    silence_db : float
        Frames under this level (dBFS) hold no note: the stem analysis' threshold (`StemAnalysis.silence_db`,
        above a separated stem's noise floor, whose noise would read as many notes in the rests).

    Notes
    -----
    The decision is taken on every DECISION_FRAME_STEP-th frame (cheap: most stems are single lines);
    only a chord stem is then estimated on every frame.
    """
    y = resample(to_mono(samples), sample_rate, MULTIPITCH_SR)
    hop = round(HOP_S * MULTIPITCH_SR)
    frames = np.arange(0, 1 + y.size // hop if y.size else 0)
    decision = frames[::DECISION_FRAME_STEP]
    notes = _frame_notes(y, decision, hop, max_notes=MAX_NOTES)
    decided = _voices(*notes, max_voices=MAX_VOICES, hop_s=HOP_S * DECISION_FRAME_STEP, silence_db=silence_db)
    if not decided.is_polyphonic:
        return None
    # A chord stem: every frame, the decision's frames not estimated twice (a frame's notes depend on
    # that frame alone).
    rest = np.ones(frames.size, bool)
    rest[decision] = False
    f0 = np.zeros((frames.size, MAX_NOTES))
    sal = np.zeros((frames.size, MAX_NOTES))
    level = np.zeros(frames.size)
    f0[decision], sal[decision], level[decision] = notes
    f0[rest], sal[rest], level[rest] = _frame_notes(y, frames[rest], hop, max_notes=MAX_NOTES)
    return _voices(f0, sal, level, max_voices=MAX_VOICES, hop_s=HOP_S, silence_db=silence_db)


def voice_analyses(analysis: StemAnalysis, voices: Voices) -> list[StemAnalysis]:
    """One analysis per voice of a chord stem, for the granular engine's tonal renderer: the voice's
    pitch as f0 (voiced wherever it sounds), the stem's level scaled by the voice's energy share, and
    silence wherever the voice does not sound. Voices that never sound are left out.

    Parameters
    ----------
    analysis : StemAnalysis
        The stem's analysis (its frame grid, levels and silence map are kept).
    voices : Voices
        The stem's notes, from `estimate_voices`.
    """
    n_frames = analysis.rms.size
    on_grid = voices.on_grid(analysis.hop_s, n_frames)
    amp = on_grid.amplitude
    # Energy shares: a voice's RMS is the stem's times amp_k / sqrt(sum of amp^2).
    norm = np.sqrt(np.maximum((amp * amp).sum(axis=1), 1e-30))
    out = []
    for k in range(on_grid.f0_hz.shape[1]):
        f0 = on_grid.f0_hz[:, k]
        sounding = f0 > 0
        if not sounding.any():
            continue
        out.append(
            replace(
                analysis,
                f0_hz=np.where(sounding, f0, 0.0).astype(np.float32),
                voiced_prob=sounding.astype(np.float32),
                rms=(analysis.rms * np.where(sounding, amp[:, k] / norm, 0.0)).astype(np.float32),
                silence=np.asarray(analysis.silence, bool) | ~sounding,
                voiced_ratio=float(sounding.mean()),
            )
        )
    return out
