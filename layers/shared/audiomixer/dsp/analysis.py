"""Stem analysis: onsets with strength, f0 with voicing confidence, RMS envelope, silence map and a
percussive-vs-tonal decision.

Everything runs at 22.05 kHz on one frame grid (hop 256, ~11.6 ms, frames centred) and in blocks of
frames, so memory stays bounded for long songs. Pitch is a vectorised YIN (librosa.pyin is ~9x real time,
far from the 20x budget) whose trough depth gives the voicing confidence; the stem's f0 is then taken per
note (cut at onsets, silences and pitch changes), one pitch from each note's steady part, octave-checked
on its spectrum (`note_level_f0`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from scipy import fft as sfft
from scipy.ndimage import maximum_filter1d, median_filter

from .audio_io import resample

ANALYSIS_SR = 22050
HOP = 256
N_FFT = 2048
N_MELS = 96
N_MFCC = 13
F0_MIN_HZ = 30.0  # a five-string bass's low B is 31 Hz
F0_MAX_HZ = 1600.0
YIN_THRESHOLD = 0.15
VOICING_DEPTH = 0.45
SILENCE_DB = -60.0  # the silence threshold of a clean stem; a noisy one's is raised (`silence_threshold_db`)
# Noise-adaptive silence. Separated stems carry bleed and a noise floor (-70 to -45 dBFS) in their rests,
# which a fixed threshold reads as sound: a plucked bass line's noisy rests outnumbered its pitched frames
# and it read as drums. As noise estimators do (minimum statistics), the floor is the minimum level of
# windows of NOISE_WINDOW_FRAMES (1.5 s; the NOISE_MIN_RANK-th lowest frame, robust to a stray frame);
# it is a noise floor when it is the same in every window (within NOISE_FLOOR_SPREAD_DB between the 10th
# and 90th percentile of the windows' minima: on the bench corpus with -50/-45 dBFS pink noise added to
# its bass stems 1.4-3.0 dB, on its clean drum stems 6-23 dB, whose decays reach different depths) and
# lies NOISE_MIN_RANGE_DB under the stem's loud frames (99th percentile; held pads and drones have a
# steady minimum too, 5-18 dB under it on the corpus, noisy bass stems 26-38 dB). Silence is then what
# lies less than NOISE_MARGIN_DB above the floor (a 93 ms frame of noise stays within ~2 dB of it, the
# render gate's 5 ms blocks within ~3 dB), never above NOISE_SILENCE_MAX_DB.
NOISE_WINDOW_FRAMES = 129
NOISE_MIN_RANK = 2
NOISE_MIN_WINDOWS = 4
NOISE_FLOOR_SPREAD_DB = 3.0
NOISE_MIN_RANGE_DB = 25.0
NOISE_MARGIN_DB = 8.0
NOISE_SILENCE_MAX_DB = -40.0  # audible quiet passages stay sound, whatever the floor
DIGITAL_SILENCE_DB = -120.0  # a window of zeros (a clean stem's rest) carries no noise floor
BLOCK_FRAMES = 256  # bounds the YIN temporaries (~40 MB) whatever the song length
# Percussive/tonal decision (measured on the fluidsynth corpus of `audiomixer bench quality`): drums have
# noise-like frames (spectral flatness > NOISY_FLATNESS) on 70-95 % of their sounding frames (hats,
# snares, cymbals; the synthetic kits with sine kicks of the tests 29-36 %) and tonal stems on <= 0.3 %;
# drums have a confident pitch (YIN trough depth < PITCHED_DEPTH) on 3-18 % of their frames, slap, picked
# and finger basses on 31-94 %; sustained chords have neither but hold their level between onsets. The
# shares are taken over the frames whose centre lies in the sound (`sounding_frames`): a 93 ms frame
# centred in the rest before a note hears the note's attack at its edge, which reads as noise-like and
# unpitched; on a short low note (a 100 ms B0 pluck is three periods, YIN needs its 46 ms window plus one
# period, 79 ms) such frames outnumbered the ones that can hold its period, and a plucked B0 line read as
# drums (pitched 24 %, noisy 10 %; over the sounding frames 38 % and 0 %).
NOISY_FLATNESS = 0.02
NOISY_SHARE_PERCUSSIVE = 0.15
PITCHED_DEPTH = 0.2
PITCHED_SHARE_TONAL = 0.25
SUSTAIN_PERCUSSIVE_DB = -2.0
# Onset detection: a 46 ms mel flux (as librosa's default at 44.1 kHz; the 93 ms analysis frame smears
# hits 87 ms apart) and peak picking with short averaging windows and a low threshold, so that a hi-hat
# right after a kick and ghost notes are kept: drum onset F1 0.971 on the corpus (librosa's default
# onset_detect 0.956), precision 1.0 on every song.
ONSET_N_FFT = 1024
ONSET_N_MELS = 128
ONSET_PRE_MAX_S = 0.03
ONSET_PRE_AVG_S = 0.05
ONSET_POST_AVG_S = 0.03
ONSET_WAIT_S = 0.03
ONSET_DELTA = 0.03
# Peak picking normalises the flux to its range, so a steady tone's ripple (mean mel-dB rise <= 0.3 per
# frame on sines) would read as onsets: a peak must also rise this much in absolute terms (drum hits on the
# corpus rise 16-40, the quietest true hits about 0.7).
ONSET_MIN_FLUX_DB = 0.5
# An onset whose level falls by more than this across it is a note's release, not a new note.
RELEASE_DROP_DB = 1.5
# ... unless the flux is strong: a note struck while a louder one still rings starts a note too.
NOTE_ONSET_STRENGTH = 0.1
# Transient refinement looks this far around a detected onset peak: further back, a quiet hat 87 ms after
# a loud snare would be moved onto the snare's body.
REFINE_BACK_S = 0.04
REFINE_AHEAD_S = 0.02
# Note-level pitch: a frame is a confident pitch when YIN's trough is this deep; a note (the frames between
# two onsets or silences) is voiced when at least NOTE_MIN_CONFIDENT of its frames are; it stays voiced
# while within NOTE_RANGE_DB of its own loudest frame. Noise sits above ~0.6; short slapped notes whose
# level falls 6 dB within the analysis frame, or that carry a sub-octave, reach 0.43-0.55 on every frame
# with the right period (the note's pitch is then octave-checked on its spectrum).
NOTE_CONFIDENT_DEPTH = 0.5
NOTE_MIN_CONFIDENT = 0.15
NOTE_RANGE_DB = 35.0
ATTACK_MERGE_FRAMES = 4
# A frame centred within half an analysis frame of a note's start hears the previous note too.
LEGATO_GUARD_FRAMES = N_FFT // (2 * HOP)
# A legato change (a new pitch without an onset) lasts; shorter excursions are a plucked string's attack
# glide or a frame's octave error.
LEGATO_MIN_FRAMES = 4
# An onset where the level falls is still a note when the pitch across it changes, judged on this many
# frames (70 ms) each side.
PITCH_CHANGE_FRAMES = 6
# Octave check of a low note's pitch on the spectrum of its steady part. A component an octave below a
# harmonic series (the bench corpus' sampled slap bass carries one, 4-11 dB under the series, on many
# notes; octave pedals add one) makes the waveform repeat only every two periods, so YIN (and pYIN) report
# that octave. Below
# SUB_OCTAVE_CHECK_MAX_HZ the ear does not follow such a fundamental but the harmonics above it (the
# dominance region of pitch lies around harmonics 3-5); what a candidate f0 has beyond its octave above is
# its odd harmonics, so when those sit ODD_HARMONICS_MIN_DB under its even ones (medians over the first
# OCTAVE_CHECK_PARTIALS partials: one stray partial moves neither) and the fundamental is weaker than the
# even ones together, the note is the octave above. On the bench corpus the slapped notes read an octave
# low have odd partials 18-27 dB under their even ones; correctly read notes at most 12 dB.
SUB_OCTAVE_CHECK_MAX_HZ = 100.0
ODD_HARMONICS_MIN_DB = 15.0
OCTAVE_CHECK_PARTIALS = 12
NOTE_SPECTRUM_MIN = 2048  # samples at ANALYSIS_SR: 93 ms, the analysis frame
NOTE_SPECTRUM_MAX = 8192  # 370 ms of a long note's steady part is plenty
# Onsets are refined to the transient, which the frame grid's centred frames already hear earlier.
ONSET_LEAD_S = 0.01

Kind = Literal["percussive", "tonal"]
FloatArray = NDArray[np.float32]


def to_mono(samples: np.ndarray) -> np.ndarray:
    """(n,) or (n, channels) -> (n,) float32 average of the channels."""
    x = np.asarray(samples)
    if x.ndim == 2:
        if x.shape[1] == 1:
            return np.ascontiguousarray(x[:, 0], dtype=np.float32)
        # Column sums: a mean over the short last axis is several times slower.
        acc = x[:, 0].astype(np.float32)
        for c in range(1, x.shape[1]):
            acc += x[:, c]
        acc *= np.float32(1.0 / x.shape[1])
        return acc
    if x.ndim != 1:
        raise ValueError(f"expected (n,) or (n, channels) audio, got shape {x.shape}")
    return np.ascontiguousarray(x, dtype=np.float32)


def db(x: np.ndarray | float, floor: float = 1e-10) -> np.ndarray:
    return np.asarray(20.0 * np.log10(np.maximum(np.abs(x), floor)))


@dataclass
class FrameFeatures:
    """Per-frame features on the analysis grid (frame i centred at i * hop / sr)."""

    sr: int
    hop: int
    rms: FloatArray
    centroid_hz: FloatArray
    flatness: FloatArray
    mel_db: FloatArray  # (n_mels, frames)
    f0_hz: FloatArray
    aperiodicity: FloatArray
    centre_rms: FloatArray  # RMS of the HOP samples around each frame's centre

    @property
    def n_frames(self) -> int:
        return int(self.rms.size)


def _framed(y_padded: np.ndarray, start: int, stop: int, hop: int, length: int) -> np.ndarray:
    """Frames start..stop-1 (rows) of a padded signal, as a strided view."""
    seg = y_padded[start * hop : (stop - 1) * hop + length]
    return np.lib.stride_tricks.sliding_window_view(seg, length)[::hop]


def _yin_block(frames: np.ndarray, sr: int, fmin: float, fmax: float) -> tuple[np.ndarray, np.ndarray]:
    """YIN on rows of `frames` (n, frame_length): cumulative-mean-normalised difference, first trough
    under the threshold (else the global minimum), parabolic refinement. Returns (f0_hz, trough depth)."""
    n, frame_length = frames.shape
    win = frame_length // 2
    max_period = min(int(np.floor(sr / fmin)), frame_length - win - 1)
    min_period = max(1, int(np.ceil(sr / fmax)))
    nfft = 2 * frame_length
    a = sfft.rfft(frames, nfft, axis=1)
    b = sfft.rfft(frames[:, win:0:-1], nfft, axis=1)
    acf = sfft.irfft(a * b, nfft, axis=1)[:, win : win + max_period + 1]
    energy = np.cumsum(np.square(frames, dtype=np.float64), axis=1)
    energy = energy[:, win : win + max_period + 1] - energy[:, : max_period + 1]
    diff = energy[:, :1] + energy - 2.0 * acf
    diff[:, 0] = 0.0
    diff = np.maximum(diff, 0.0)
    tau = np.arange(1, max_period + 1)
    cmean = np.cumsum(diff[:, 1:], axis=1) / tau
    # Floor relative to the frame's energy: where the integration window is nearly empty (a click late
    # in the frame) the difference is ~0/0, which must read as aperiodic rather than perfectly periodic.
    floor = (
        1e-3 * energy[:, :1]
        + 1e-3 * np.sum(np.square(frames, dtype=np.float64), axis=1, keepdims=True) / 2
        + 1e-12
    )
    cmndf = (diff[:, min_period : max_period + 1] + floor) / (cmean[:, min_period - 1 : max_period] + floor)
    # Troughs: local minima below the threshold; take the first (YIN's octave-error guard).
    is_min = np.zeros_like(cmndf, dtype=bool)
    is_min[:, 1:-1] = (cmndf[:, 1:-1] < cmndf[:, :-2]) & (cmndf[:, 1:-1] <= cmndf[:, 2:])
    below = is_min & (cmndf < YIN_THRESHOLD)
    has = below.any(axis=1)
    idx = np.where(has, below.argmax(axis=1), cmndf.argmin(axis=1))
    rows = np.arange(n)
    depth = cmndf[rows, idx]
    left = cmndf[rows, np.maximum(idx - 1, 0)]
    right = cmndf[rows, np.minimum(idx + 1, cmndf.shape[1] - 1)]
    denom = left - 2 * depth + right
    shift = np.where(np.abs(denom) > 1e-12, 0.5 * (left - right) / np.where(denom == 0, 1, denom), 0.0)
    shift = np.clip(shift, -1.0, 1.0)
    period = min_period + idx + shift
    f0 = sr / np.maximum(period, 1e-6)
    return f0.astype(np.float32), np.clip(depth, 0.0, 2.0).astype(np.float32)


def frame_features(y: np.ndarray, sr: int = ANALYSIS_SR, *, with_pitch: bool = True) -> FrameFeatures:
    """Frame features of a mono signal at `sr`, computed block by block (memory ~ BLOCK_FRAMES frames)."""
    import librosa

    y = np.asarray(y, dtype=np.float32)
    n_frames = 1 + len(y) // HOP
    pad = N_FFT // 2
    y_pad = np.pad(y, (pad, pad + HOP))
    window = np.hanning(N_FFT + 1)[:-1].astype(np.float32)
    mel_fb = librosa.filters.mel(sr=sr, n_fft=N_FFT, n_mels=N_MELS).astype(np.float32)
    freqs = np.fft.rfftfreq(N_FFT, 1.0 / sr).astype(np.float32)
    rms = np.empty(n_frames, np.float32)
    cen = np.empty(n_frames, np.float32)
    flat = np.empty(n_frames, np.float32)
    mel = np.empty((N_MELS, n_frames), np.float32)
    f0 = np.zeros(n_frames, np.float32)
    ap = np.ones(n_frames, np.float32)
    win_norm = float(np.sum(window**2))
    for start in range(0, n_frames, BLOCK_FRAMES):
        stop = min(n_frames, start + BLOCK_FRAMES)
        frames = _framed(y_pad, start, stop, HOP, N_FFT)
        spec = sfft.rfft(frames * window, axis=1)
        power = (spec.real**2 + spec.imag**2).astype(np.float32)
        # Parseval: mean square of the windowed frame, normalised by the window's energy.
        ms = (2.0 * power[:, 1:-1].sum(axis=1) + power[:, 0] + power[:, -1]) / (N_FFT * win_norm)
        rms[start:stop] = np.sqrt(ms)
        tot = power.sum(axis=1) + 1e-12
        cen[start:stop] = (power @ freqs) / tot
        logp = np.log(power + 1e-10)
        flat[start:stop] = np.exp(logp.mean(axis=1)) / (power.mean(axis=1) + 1e-10)
        mel[:, start:stop] = (mel_fb @ power.T).astype(np.float32)
        if with_pitch:
            f0[start:stop], ap[start:stop] = _yin_block(
                np.asarray(frames, np.float64), sr, F0_MIN_HZ, F0_MAX_HZ
            )
    # An 80 dB floor under the loudest frame, as librosa does: otherwise the first frame after digital
    # silence dwarfs every real onset in the flux.
    mel_db = librosa.power_to_db(mel, ref=1.0, top_db=80.0).astype(np.float32)
    return FrameFeatures(sr, HOP, rms, cen, flat, mel_db, f0, ap, centre_rms(y, n_frames))


def centre_rms(y: np.ndarray, n_frames: int) -> FloatArray:
    """RMS of the HOP samples centred on each frame's centre (frame i centred at sample i * HOP).

    Parameters
    ----------
    y : np.ndarray
        Mono signal.
    n_frames : int
        Number of frames on the analysis grid.
    """
    centred = np.zeros(n_frames * HOP, np.float64)
    seg = np.asarray(y[: n_frames * HOP - HOP // 2], np.float64)
    centred[HOP // 2 : HOP // 2 + seg.size] = seg
    mean_square = np.mean(np.square(centred.reshape(n_frames, HOP)), axis=1)
    return np.asarray(np.sqrt(mean_square), np.float32)


def noise_floor_db(level_db: np.ndarray) -> float | None:
    """The stem's noise floor (dBFS) by minimum statistics: the median of the minimum levels of its
    windows of NOISE_WINDOW_FRAMES frames (each the NOISE_MIN_RANK-th lowest frame), when those minima
    agree within NOISE_FLOOR_SPREAD_DB (10th to 90th percentile) over at least NOISE_MIN_WINDOWS windows
    that are not digital silence. None when the stem has no such steady floor (a clean stem, whose decays
    end at different depths, or one too short to tell).

    Parameters
    ----------
    level_db : np.ndarray
        RMS level per analysis frame, dBFS.
    """
    level_db = np.asarray(level_db, np.float64)
    n_windows = level_db.size // NOISE_WINDOW_FRAMES
    if n_windows == 0:
        return None
    windows = level_db[: n_windows * NOISE_WINDOW_FRAMES].reshape(n_windows, NOISE_WINDOW_FRAMES)
    minima = np.partition(windows, NOISE_MIN_RANK, axis=1)[:, NOISE_MIN_RANK]
    minima = minima[minima > DIGITAL_SILENCE_DB]
    if minima.size < NOISE_MIN_WINDOWS:
        return None
    low, high = np.percentile(minima, [10.0, 90.0])
    if high - low > NOISE_FLOOR_SPREAD_DB:
        return None
    return float(np.median(minima))


def silence_threshold_db(level_db: np.ndarray, silence_db: float = SILENCE_DB) -> float:
    """The level (dBFS) under which a frame of this stem is silent: `silence_db` for a clean stem,
    raised to NOISE_MARGIN_DB above its noise floor (`noise_floor_db`) when that floor lies at least
    NOISE_MIN_RANGE_DB under the stem's loud frames (99th percentile), never above NOISE_SILENCE_MAX_DB.

    Parameters
    ----------
    level_db : np.ndarray
        RMS level per analysis frame, dBFS.
    silence_db : float
        The threshold of a clean stem, dBFS.
    """
    floor = noise_floor_db(level_db)
    if floor is None or floor + NOISE_MARGIN_DB <= silence_db:
        return float(silence_db)
    loud_db = float(np.percentile(level_db, 99.0))
    if loud_db - floor < NOISE_MIN_RANGE_DB:
        return float(silence_db)
    return float(max(silence_db, min(floor + NOISE_MARGIN_DB, NOISE_SILENCE_MAX_DB)))


def voicing(features: FrameFeatures, silence_db: float = SILENCE_DB) -> tuple[np.ndarray, np.ndarray]:
    """Voicing probability from YIN's trough depth (0 -> perfectly periodic) gated by level, and the
    f0 track cleaned with a short median (octave blips) and zeroed where unvoiced."""
    level_db = db(features.rms)
    gate = np.clip((level_db - silence_db) / 10.0, 0.0, 1.0)
    # Trough depth 0 is perfectly periodic; note starts and vibrato reach ~0.4 with a correct pitch while
    # noise sits above ~0.6, so depth VOICING_DEPTH maps to probability 0.5.
    prob = np.clip(1.0 - features.aperiodicity / (2 * VOICING_DEPTH), 0.0, 1.0) * gate
    voiced = prob >= 0.5
    logf = np.log2(np.maximum(features.f0_hz, 1e-3))
    smooth = median_filter(np.where(voiced, logf, np.nan), size=5, mode="nearest")
    smooth = np.where(np.isnan(smooth), logf, smooth)
    f0 = np.where(voiced, 2.0**smooth, 0.0)
    return f0.astype(np.float32), prob.astype(np.float32)


def partial_levels_db(power: np.ndarray, bin_hz: float, f0_hz: float, n_partials: int) -> np.ndarray:
    """Level (dB) of the partials 1..n_partials of `f0_hz` in a power spectrum: each is the largest bin
    within a quarter of f0 of k*f0 (room for a string's inharmonicity, never reaching the next partial).

    Parameters
    ----------
    power : np.ndarray
        Power spectrum (rfft bins).
    bin_hz : float
        Width of one bin, Hz.
    f0_hz : float
        Candidate fundamental, Hz.
    n_partials : int
        How many partials; those above the spectrum's top read as silent.
    """
    half = max(1, int(0.25 * f0_hz / bin_hz))
    peaks = np.zeros(n_partials)
    for k in range(1, n_partials + 1):
        centre = round(k * f0_hz / bin_hz)
        lo, hi = max(0, centre - half), min(power.size, centre + half + 1)
        peaks[k - 1] = float(power[lo:hi].max(initial=0.0))
    return np.asarray(10.0 * np.log10(peaks + 1e-20))


def octave_checked_pitch(segment: np.ndarray, sr: int, log2_f0: float) -> float:
    """The note's log2 f0 moved up an octave when, below SUB_OCTAVE_CHECK_MAX_HZ, the candidate's harmonic
    series is only its octave's series plus a lone sub-octave component: its odd partials above the
    fundamental (median level) ODD_HARMONICS_MIN_DB under its even ones, and its fundamental weaker than
    the even ones together. Unchanged otherwise.

    Parameters
    ----------
    segment : np.ndarray
        The note's steady part, mono, at `sr`.
    sr : int
        Sample rate, Hz.
    log2_f0 : float
        Candidate pitch, log2 of Hz.
    """
    if segment.size < 16 or 2.0**log2_f0 >= SUB_OCTAVE_CHECK_MAX_HZ:
        return log2_f0
    n_fft = max(1 << 14, 1 << int(np.ceil(np.log2(4 * segment.size))))
    power = np.abs(sfft.rfft(segment * np.hanning(segment.size), n_fft)) ** 2
    levels = partial_levels_db(power, sr / n_fft, 2.0**log2_f0, OCTAVE_CHECK_PARTIALS)
    odd, even = levels[2::2], levels[1::2]
    even_total_db = 10.0 * np.log10(np.sum(10.0 ** (even / 10.0)))
    if np.median(odd) < np.median(even) - ODD_HARMONICS_MIN_DB and levels[0] < even_total_db:
        return log2_f0 + 1.0
    return log2_f0


def lasting(mask: np.ndarray, min_frames: int) -> np.ndarray:
    """`mask` with its runs of True shorter than `min_frames` cleared."""
    padded = np.concatenate([[False], mask, [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    out = np.zeros(mask.size, bool)
    for start, stop in zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True):
        if stop - start >= min_frames:
            out[start:stop] = True
    return out


def note_pitch(log2_f0: np.ndarray) -> float:
    """One pitch (log2 Hz) for a note's confident frame pitches: their pitch class by a circular mean
    refined by the median of the octave-folded deviations, in the octave that most frames are in.

    A plain median of pitches split between two octaves (a sub-octave read on half the frames) lands
    between them, a tritone from both; folding by octaves first keeps the note on its pitch class.

    Parameters
    ----------
    log2_f0 : np.ndarray
        log2 of the frames' f0 (Hz), at least one.
    """
    angle = float(np.angle(np.mean(np.exp(2j * np.pi * log2_f0))))
    pitch_class = angle / (2 * np.pi)
    folded = log2_f0 - pitch_class
    deviation = folded - np.round(folded)
    pitch_class += float(np.median(deviation))
    octaves = np.round(log2_f0 - pitch_class)
    # The median octave; between two equally held octaves the lower, which the spectral octave check
    # (`octave_checked_pitch`) moves up when it is a sub-octave.
    octave = float(np.sort(octaves)[(octaves.size - 1) // 2])
    return pitch_class + octave


def note_level_f0(
    f0_hz: np.ndarray,
    aperiodicity: np.ndarray,
    level_db: np.ndarray,
    onset_frames: np.ndarray,
    silence_db: float = SILENCE_DB,
    *,
    y: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """One pitch per note, as note transcribers do: frame trackers' errors sit at note changes and in
    plucked notes' noisy attacks and decays, where a note's steady part knows its pitch.

    The stem is cut into notes at its onsets and silences; a note with enough confident frames (YIN
    trough below NOTE_CONFIDENT_DEPTH) takes their pitch (`note_pitch`: pitch class first, then the
    octave most of them are in, so an octave blip does not move it), octave-checked on the spectrum of
    its steady part when `y` is given (`octave_checked_pitch`), and every frame of the note within
    NOTE_RANGE_DB of its loudest is voiced at that pitch, except runs of at least LEGATO_MIN_FRAMES
    confident frames more than a semitone away and not an octave away, past the note's first
    LEGATO_GUARD_FRAMES (a legato change without an onset keeps its own pitch).

    Parameters
    ----------
    f0_hz : np.ndarray
        YIN's f0 per frame, Hz.
    aperiodicity : np.ndarray
        YIN's trough depth per frame (0 is perfectly periodic).
    level_db : np.ndarray
        RMS level per frame, dBFS.
    onset_frames : np.ndarray
        Frame index of each onset.
    silence_db : float
        Frames below this level are silent (and end a note).
    y : np.ndarray, optional
        The mono signal at ANALYSIS_SR on whose frames (hop HOP, centred) the features were taken: when
        given, each note's pitch is octave-checked on its steady part's spectrum.

    Returns
    -------
    f0_hz : np.ndarray
        float32 f0 per frame, 0 where unvoiced.
    voiced : np.ndarray
        bool per frame.
    steady_ratio : float
        Fraction of the non-silent frames that are confident and within 50 cents of their note's pitch
        (high for pitched notes, plucked or not; low for drums).
    """
    n = f0_hz.size
    f0 = np.zeros(n, np.float32)
    voiced = np.zeros(n, bool)
    if n == 0:
        return f0, voiced, 0.0
    silent = level_db < silence_db
    sound_starts = np.nonzero(~silent[1:] & silent[:-1])[0] + 1
    onsets = np.clip(np.asarray(onset_frames, np.int64), 0, n - 1)
    # An onset just after a sound starts out of silence is that same note's attack, not a new note.
    if sound_starts.size and onsets.size:
        pos = np.searchsorted(sound_starts, onsets, side="right") - 1
        since = onsets - sound_starts[np.maximum(pos, 0)]
        onsets = onsets[(pos < 0) | (since > ATTACK_MERGE_FRAMES)]
    cut = np.zeros(n, bool)
    cut[onsets] = True
    cut[0] = True
    cut[1:] |= silent[1:] != silent[:-1]
    starts = np.nonzero(cut)[0]
    stops = np.append(starts[1:], n)
    log_f0 = np.log2(np.maximum(np.nan_to_num(f0_hz, nan=1e-3), 1e-3))
    confident_all = aperiodicity < NOTE_CONFIDENT_DEPTH
    steady = 0
    for a, b in zip(starts.tolist(), stops.tolist(), strict=True):
        if silent[a]:
            continue
        confident = confident_all[a:b]
        if confident.sum() < max(2.0, NOTE_MIN_CONFIDENT * (b - a)):
            continue
        # The steady part: past the first frames, whose windows still hear the previous note.
        steady_part = confident.copy()
        steady_part[:LEGATO_GUARD_FRAMES] = False
        if steady_part.sum() < 2:
            steady_part = confident
        note = note_pitch(log_f0[a:b][steady_part])
        if y is not None:
            steady_frames = np.nonzero(steady_part)[0] + a
            lo = int(steady_frames[0]) * HOP
            hi = min(int(steady_frames[-1]) * HOP + HOP, lo + NOTE_SPECTRUM_MAX)
            if hi - lo < NOTE_SPECTRUM_MIN:
                mid = (lo + hi) // 2
                lo, hi = max(0, mid - NOTE_SPECTRUM_MIN // 2), mid + NOTE_SPECTRUM_MIN // 2
            note = octave_checked_pitch(np.asarray(y[lo:hi], np.float64), ANALYSIS_SR, note)
        away = log_f0[a:b] - note
        legato = confident & (np.abs(away) > 1 / 12) & (np.abs(np.abs(away) - 1.0) > 1 / 12)
        # The first frames' windows still hear the previous note: its pitch there is no legato change.
        legato[:LEGATO_GUARD_FRAMES] = False
        legato = lasting(legato, LEGATO_MIN_FRAMES)
        steady += int(np.sum(confident & (np.abs(away) <= 1 / 24)))
        sounding = level_db[a:b] > float(level_db[a:b].max()) - NOTE_RANGE_DB
        voiced[a:b] = sounding
        f0[a:b] = np.where(sounding, 2.0 ** np.where(legato, log_f0[a:b], note), 0.0)
    n_active = int((~silent).sum())
    return f0, voiced, (steady / n_active if n_active else 0.0)


def _fl(a: np.ndarray, digits: int = 5) -> list[float]:
    return [float(v) for v in np.round(np.asarray(a, dtype=np.float64), digits)]


@dataclass
class StemAnalysis:
    """Analysis of one stem. Frame i of every per-frame array is centred at i * hop_s seconds."""

    sample_rate: int
    n_samples: int
    n_channels: int
    hop_s: float
    onset_times_s: np.ndarray
    onset_strengths: np.ndarray  # onset envelope at the peak, normalised to the stem's strongest onset
    onset_peaks: np.ndarray  # linear peak |x| within 50 ms after the onset (the hit's "velocity")
    onset_centroids_hz: np.ndarray
    f0_hz: np.ndarray  # 0 where unvoiced
    voiced_prob: np.ndarray
    rms: np.ndarray  # linear RMS per frame
    centroid_hz: np.ndarray
    silence: np.ndarray  # bool per frame: RMS below silence_db
    kind: Kind
    voiced_ratio: float
    sustain_db: float
    silence_db: float = SILENCE_DB
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.sample_rate

    @property
    def frame_times_s(self) -> np.ndarray:
        return np.arange(self.rms.size) * self.hop_s

    def to_dict(self) -> dict[str, Any]:
        return {
            "sample_rate": self.sample_rate,
            "n_samples": self.n_samples,
            "n_channels": self.n_channels,
            "hop_s": self.hop_s,
            "onsets_s": _fl(self.onset_times_s),
            "onset_strengths": _fl(self.onset_strengths, 4),
            "onset_peaks": _fl(self.onset_peaks, 6),
            "onset_centroids_hz": _fl(self.onset_centroids_hz, 1),
            "f0_hz": _fl(self.f0_hz, 3),
            "voiced_prob": _fl(self.voiced_prob, 3),
            "rms": _fl(self.rms, 7),
            "centroid_hz": _fl(self.centroid_hz, 1),
            "silence": [int(v) for v in self.silence],
            "kind": self.kind,
            "voiced_ratio": round(float(self.voiced_ratio), 4),
            "sustain_db": round(float(self.sustain_db), 3),
            "silence_db": self.silence_db,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StemAnalysis:
        kind = d["kind"]
        if kind not in ("percussive", "tonal"):
            raise ValueError(f"bad kind {kind!r}")
        return cls(
            sample_rate=int(d["sample_rate"]),
            n_samples=int(d["n_samples"]),
            n_channels=int(d["n_channels"]),
            hop_s=float(d["hop_s"]),
            onset_times_s=np.asarray(d["onsets_s"] if "onsets_s" in d else d["onset_times_s"], np.float64),
            onset_strengths=np.asarray(d["onset_strengths"], np.float32),
            onset_peaks=np.asarray(d["onset_peaks"], np.float32),
            onset_centroids_hz=np.asarray(d["onset_centroids_hz"], np.float32),
            f0_hz=np.asarray(d["f0_hz"], np.float32),
            voiced_prob=np.asarray(d["voiced_prob"], np.float32),
            rms=np.asarray(d["rms"], np.float32),
            centroid_hz=np.asarray(d["centroid_hz"], np.float32),
            silence=np.asarray(d["silence"], bool),
            kind=kind,
            voiced_ratio=float(d["voiced_ratio"]),
            sustain_db=float(d["sustain_db"]),
            silence_db=float(d.get("silence_db", SILENCE_DB)),
        )

    def f0_series(self) -> dict[str, list[float]]:
        """The CLI's analysis-file view: frame times, f0 (0 where unvoiced) and voicing probability."""
        return {
            "f0_times_s": _fl(self.frame_times_s, 5),
            "f0_hz": _fl(self.f0_hz, 3),
            "voiced_prob": _fl(self.voiced_prob, 3),
        }


def sustain_db(rms: np.ndarray, active: np.ndarray, hop_s: float) -> float:
    """Median level (dB) of the active frames relative to the loudest frame within +-145 ms: ~0 dB for
    sustained notes, -7 to -11 dB for drum hits that decay between onsets."""
    if not active.any():
        return 0.0
    width = max(3, round(0.29 / hop_s) | 1)
    local_max = maximum_filter1d(rms, width, mode="nearest")
    return float(np.median(db(rms[active] / (local_max[active] + 1e-12))))


def pitched_share(aperiodicity: np.ndarray, active: np.ndarray) -> float:
    """Share of the sounding frames with a confident pitch (YIN trough depth below PITCHED_DEPTH)."""
    n_active = int(active.sum())
    return float((aperiodicity[active] < PITCHED_DEPTH).sum() / n_active) if n_active else 0.0


def noisy_share(flatness: np.ndarray, active: np.ndarray) -> float:
    """Share of the sounding frames whose spectrum is noise-like (flatness above NOISY_FLATNESS)."""
    n_active = int(active.sum())
    return float((flatness[active] > NOISY_FLATNESS).sum() / n_active) if n_active else 0.0


def sounding_frames(features: FrameFeatures, silence_db: float = SILENCE_DB) -> np.ndarray:
    """bool per frame: the frame is active (its RMS at or above `silence_db`) and its centre lies in the
    sound (the HOP samples around it too), so that its features describe the sound, not the edge of a
    window reaching into it from a rest."""
    return np.asarray((db(features.rms) >= silence_db) & (db(features.centre_rms) >= silence_db), bool)


def kind_features(features: FrameFeatures, silence_db: float = SILENCE_DB) -> tuple[float, float, float]:
    """The features `classify` decides on: (sustain dB over the active frames, pitched share and noisy
    share over the sounding frames, see `sounding_frames`).

    Parameters
    ----------
    features : FrameFeatures
        Frame features of the stem or sound.
    silence_db : float
        Frames below this level (dBFS) are silent.
    """
    active = db(features.rms) >= silence_db
    sounding = sounding_frames(features, silence_db)
    hop_s = features.hop / features.sr
    return (
        sustain_db(features.rms, active, hop_s),
        pitched_share(features.aperiodicity, sounding),
        noisy_share(features.flatness, sounding),
    )


def classify(sustain: float, pitched: float, noisy: float) -> Kind:
    """Percussive when the material decays between onsets (`sustain`, dB, see `sustain_db`) and is either
    noisy (hats, snares, cymbals: `noisy` share of frames) or mostly unpitched (`pitched` share of frames);
    tonal otherwise.

    A plucked or slapped bass decays like a drum (sustain -6 to -7 dB) but is pitched on a quarter or more
    of its sounding frames (`kind_features`) and never noise-like; chords have no single pitch, but they
    sustain. Toms alone are not told apart from a bass line (their lowest mode gives YIN a confident trough
    on most frames): in a kit the snares' and cymbals' noise makes the stem percussive.
    """
    if sustain < SUSTAIN_PERCUSSIVE_DB and (noisy >= NOISY_SHARE_PERCUSSIVE or pitched < PITCHED_SHARE_TONAL):
        return "percussive"
    return "tonal"


def detect_onsets(y: np.ndarray, active: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Onset peaks of a mono signal at ANALYSIS_SR on the analysis frame grid.

    Parameters
    ----------
    y : np.ndarray
        Mono signal at ANALYSIS_SR.
    active : np.ndarray
        bool per analysis frame; the flux of near-digital silence is noise and is ignored.

    Returns
    -------
    peaks : np.ndarray
        Frame indices of the onsets (int).
    onset_env : np.ndarray
        The onset strength envelope (float32, one value per frame, zero where not active).
    """
    import librosa

    env = librosa.onset.onset_strength(
        y=np.asarray(y, np.float32), sr=ANALYSIS_SR, hop_length=HOP, n_fft=ONSET_N_FFT, n_mels=ONSET_N_MELS
    )
    onset_env = np.zeros(active.size, np.float32)
    n = min(env.size, active.size)
    onset_env[:n] = np.where(active[:n], env[:n], 0.0)
    if not onset_env.any():
        return np.zeros(0, int), onset_env
    norm = (onset_env - onset_env.min()) / (onset_env.max() - onset_env.min())
    fr = ANALYSIS_SR / HOP
    peaks = librosa.util.peak_pick(
        norm,
        pre_max=max(1, int(ONSET_PRE_MAX_S * fr)),
        post_max=1,
        pre_avg=max(1, int(ONSET_PRE_AVG_S * fr)),
        post_avg=int(ONSET_POST_AVG_S * fr) + 1,
        delta=ONSET_DELTA,
        wait=int(ONSET_WAIT_S * fr),
    )
    peaks = np.asarray(peaks, int)
    return peaks[onset_env[peaks] >= ONSET_MIN_FLUX_DB], onset_env


def level_holds_after(level_db: np.ndarray, onset_frames: np.ndarray) -> np.ndarray:
    """bool per onset: the level 23-58 ms after it is no more than RELEASE_DROP_DB below the level
    23-58 ms before it (a new note or a legato change, not the end of one).

    Parameters
    ----------
    level_db : np.ndarray
        Frame levels (dB) on the analysis grid.
    onset_frames : np.ndarray
        Onset positions in (fractional) analysis frames.
    """
    n = level_db.size
    idx = np.round(np.asarray(onset_frames, np.float64)).astype(np.int64)
    after = np.stack([level_db[np.clip(idx + k, 0, n - 1)] for k in range(2, 6)]).mean(axis=0)
    before = np.stack([level_db[np.clip(idx - k, 0, n - 1)] for k in range(2, 6)]).mean(axis=0)
    return np.asarray(after >= before - RELEASE_DROP_DB, bool)


def pitch_changes_at(f0_hz: np.ndarray, aperiodicity: np.ndarray, onset_frames: np.ndarray) -> np.ndarray:
    """bool per onset: the confident pitch (median over up to PITCH_CHANGE_FRAMES frames) after the onset
    differs by more than half a semitone from the one before it, octave changes included.

    A note struck while the previous one's release still rings louder (a slapped octave "pop" after a
    thumbed root) lowers the level across its onset like a release does; its new pitch tells it apart.
    The frames after it are taken from LEGATO_GUARD_FRAMES on, where the analysis windows no longer hear
    the previous note, and not past the next onset.

    Parameters
    ----------
    f0_hz : np.ndarray
        YIN's f0 per frame, Hz.
    aperiodicity : np.ndarray
        YIN's trough depth per frame; frames below NOTE_CONFIDENT_DEPTH count.
    onset_frames : np.ndarray
        Onset positions in (fractional) analysis frames, ascending.
    """
    n = f0_hz.size
    idx = np.round(np.asarray(onset_frames, np.float64)).astype(np.int64)
    log_f0 = np.log2(np.maximum(np.nan_to_num(f0_hz, nan=1e-3), 1e-3))
    confident = aperiodicity < NOTE_CONFIDENT_DEPTH
    out = np.zeros(idx.size, bool)
    for k, i in enumerate(idx.tolist()):
        nxt = int(idx[k + 1]) if k + 1 < idx.size else n
        lo_b, hi_b = max(0, i - PITCH_CHANGE_FRAMES), min(n, max(0, i))
        lo_a = i + LEGATO_GUARD_FRAMES
        hi_a = min(n, nxt, lo_a + PITCH_CHANGE_FRAMES)
        before = log_f0[lo_b:hi_b][confident[lo_b:hi_b]]
        after = log_f0[lo_a:hi_a][confident[lo_a:hi_a]] if hi_a > lo_a else before[:0]
        if before.size and after.size:
            out[k] = abs(float(np.median(after)) - float(np.median(before))) > 1 / 24
    return out


def refine_onsets(
    mono: np.ndarray, sample_rate: int, peak_times_s: np.ndarray, fallback_s: np.ndarray
) -> np.ndarray:
    """Sample-accurate transient times: around each detected onset, on the 1 ms envelope of the first
    difference (which suppresses the low, ringing tails of earlier hits), walk back from the envelope's
    peak to where it last sat below 20% of the way up from the local floor."""
    block = max(1, sample_rate // 1000)
    out = np.asarray(fallback_s, dtype=np.float64).copy()
    prev_end = 0
    for i, t in enumerate(peak_times_s):
        a = max(prev_end, int((t - REFINE_BACK_S) * sample_rate))
        b = min(mono.size, int((t + REFINE_AHEAD_S) * sample_rate))
        if b - a < 4 * block:
            continue
        seg = np.abs(np.diff(mono[a:b]))
        nb = seg.size // block
        env = seg[: nb * block].reshape(nb, block).max(axis=1)
        pk = int(env.argmax())
        floor = float(env[: pk + 1].min())
        thr = floor + 0.2 * (float(env[pk]) - floor)
        below = np.nonzero(env[: pk + 1] < thr)[0]
        k = int(below[-1]) + 1 if below.size else 0
        out[i] = (a + k * block) / sample_rate
        prev_end = a + pk * block
    return out


def hit_peaks(mono: np.ndarray, starts: np.ndarray, win: int, pre: int) -> np.ndarray:
    """Each hit's own peak level (its "velocity"): the peak |x| within `win` samples after its start,
    less the peak of the `pre` samples before it, so that a quiet hat over a loud kick's tail is not
    taken for a loud hit; never below a tenth of the peak after."""
    out = np.empty(starts.size, np.float32)
    for i, s in enumerate(starts.tolist()):
        after = float(np.max(np.abs(mono[s : s + win]), initial=0.0))
        before = float(np.max(np.abs(mono[max(0, s - pre) : s]), initial=0.0))
        out[i] = max(after - before, 0.1 * after)
    return out


def add_leading_onset(
    mono: np.ndarray, sample_rate: int, onsets_s: np.ndarray, silence_db: float
) -> np.ndarray:
    """A sound that starts loud at the very beginning has no onset in the flux (no earlier frame to
    compare with): add one at its first non-silent sample unless an onset is already within 50 ms."""
    thr = 10 ** (silence_db / 20.0)
    above = np.nonzero(np.abs(mono[: int(0.1 * sample_rate)]) > thr)[0]
    if above.size == 0:
        return onsets_s
    first = above[0] / sample_rate
    if onsets_s.size and onsets_s[0] - first < 0.05:
        return onsets_s
    return np.concatenate([[first], onsets_s])


def analyse_stem(samples: np.ndarray, sample_rate: int, *, silence_db: float = SILENCE_DB) -> StemAnalysis:
    """Analyse a stem given as (n,) or (n, channels) float audio at `sample_rate`.

    `silence_db` is the silence threshold of a clean stem; a stem with a noise floor gets a higher one
    (`silence_threshold_db`), used for every silence decision here and stored as the analysis'
    `silence_db` for the render's gate.
    """
    import librosa

    x = np.asarray(samples)
    n_samples = int(x.shape[0])
    n_channels = 1 if x.ndim == 1 else int(x.shape[1])
    mono = to_mono(x)
    y = resample(mono, sample_rate, ANALYSIS_SR)
    feats = frame_features(y, ANALYSIS_SR)
    hop_s = HOP / ANALYSIS_SR
    level_db = db(feats.rms)
    floor_db = noise_floor_db(level_db)
    silence_db = silence_threshold_db(level_db, silence_db)
    silence = level_db < silence_db
    active = ~silence

    peaks, onset_env = detect_onsets(y, active)
    back = librosa.onset.onset_backtrack(peaks, onset_env) if peaks.size else peaks
    env_max = float(onset_env.max()) if onset_env.size else 0.0
    strengths = onset_env[peaks] / env_max if env_max > 0 else np.zeros(peaks.size, np.float32)
    onset_times = refine_onsets(mono, sample_rate, peaks * hop_s, back * hop_s)
    n_lead = onset_times.size
    onset_times = add_leading_onset(mono, sample_rate, onset_times, silence_db)
    if onset_times.size > n_lead:
        peaks = np.concatenate([[0], peaks])
        strengths = np.concatenate(
            [[1.0 if env_max == 0 else float(onset_env[:3].max() / env_max)], strengths]
        )
    # Peak and brightness of each hit on the full-rate signal / analysis grid.
    win = int(0.05 * sample_rate)
    starts = np.clip((onset_times * sample_rate).astype(int), 0, max(0, n_samples - 1))
    onset_peaks = hit_peaks(mono, starts, win, int(0.01 * sample_rate))
    cen_idx = np.clip(peaks, 0, feats.n_frames - 1)
    onset_cen = feats.centroid_hz[cen_idx] if peaks.size else np.zeros(0, np.float32)

    _, frame_prob = voicing(feats, silence_db)
    n_active = int(active.sum())
    voiced_ratio = float((frame_prob[active] >= 0.5).sum() / n_active) if n_active else 0.0
    sustain, pitched, noisy = kind_features(feats, silence_db)
    kind = classify(sustain, pitched, noisy)
    # Notes start where the level rises or holds (a legato change) or the pitch changes: flux at a note's
    # end (the release's spectral splatter) would open a "note" in the rest that follows. The onsets
    # themselves are kept.
    note_onsets = onset_times[
        level_holds_after(level_db, onset_times / hop_s)
        | (np.asarray(strengths)[: onset_times.size] >= NOTE_ONSET_STRENGTH)
        | pitch_changes_at(feats.f0_hz, feats.aperiodicity, onset_times / hop_s)
    ]
    onset_frames = np.round((note_onsets - ONSET_LEAD_S) * ANALYSIS_SR / HOP).astype(np.int64)
    f0, note_voiced, steady = note_level_f0(
        feats.f0_hz, feats.aperiodicity, level_db, onset_frames, silence_db, y=y
    )
    # The frame voicing probability, raised inside voiced notes and lowered outside them.
    prob = np.where(note_voiced, np.maximum(frame_prob, 0.75), np.minimum(frame_prob, 0.25))
    prob = prob.astype(np.float32)
    return StemAnalysis(
        sample_rate=int(sample_rate),
        n_samples=n_samples,
        n_channels=n_channels,
        hop_s=hop_s,
        onset_times_s=onset_times.astype(np.float64),
        onset_strengths=np.asarray(strengths, np.float32),
        onset_peaks=onset_peaks,
        onset_centroids_hz=np.asarray(onset_cen, np.float32),
        f0_hz=f0,
        voiced_prob=prob,
        rms=feats.rms,
        centroid_hz=feats.centroid_hz,
        silence=silence,
        kind=kind,
        voiced_ratio=voiced_ratio,
        sustain_db=sustain,
        silence_db=silence_db,
        extra={
            "pitched_share": pitched,
            "noisy_share": noisy,
            "steady_ratio": round(steady, 4),
            "noise_floor_db": None if floor_db is None else round(floor_db, 2),
        },
    )
