"""The measures of `audiomixer bench quality` (issue 11), computed by tools independent of the engine
they judge: mir_eval for onsets (+-50 ms) and pitch (50 cents), librosa's pYIN and onset detector,
MFCCs 1-13, and a true-peak meter made of `scipy.signal.resample_poly` (not the limiter's own).

Every function takes audio as (n,) or (n, channels) float arrays and times in seconds."""

from __future__ import annotations

import numpy as np

# Onset F1 (+-50 ms, mir_eval) is the dsp tests' measure too: one implementation.
from audiomixer_tools.metrics import onset_f1

__all__ = [
    "LEAD_FMAX_HZ",
    "LEAD_FMIN_HZ",
    "PYIN_FMAX_HZ",
    "PYIN_FMIN_HZ",
    "PYIN_SR",
    "SILENT_DB",
    "STAYS_SILENT_DB",
    "drum_classes_heard",
    "drum_hit_mfcc_distance",
    "envelope_correlation",
    "frame_rms_db",
    "librosa_onsets",
    "mfcc_distance",
    "mfcc_mean",
    "one_shot_starts",
    "onset_f1",
    "pitch_scores",
    "pyin_track",
    "silence_kept",
    "true_peak_dbtp",
]

PYIN_SR = 22050
PYIN_FMIN_HZ = 30.0  # pYIN has no default range; this one holds E1 (41 Hz)
PYIN_FMAX_HZ = 500.0  # B4: above anything a bass plays, with room for an octave error to show
LEAD_FMIN_HZ, LEAD_FMAX_HZ = 65.0, 1500.0  # a lead or a voice
SILENT_DB = -60.0  # a source frame this quiet is silence...
STAYS_SILENT_DB = -50.0  # ...and the rendered frame must stay below this
CENTS_TOLERANCE = 50.0
HIT_MFCC_S = 0.09  # the span of a drum hit whose timbre is compared with the kit's one-shots
HIT_MATCH_S = 0.04  # the span of a one-shot sought in a rendered hit...
HIT_SEARCH_S = (-0.01, 0.02)  # ...this far (s) before / after the truth onset
LAYER_MIN_SHARE = 0.15  # a second one-shot is heard in a hit when it explains this share of its energy
LAYER_MIN_CORRELATION = 0.6


def _mono(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x if x.ndim == 1 else x.mean(axis=1)


def _channels(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x[:, None] if x.ndim == 1 else x


def pitch_scores(
    ref_times_s: np.ndarray, ref_f0_hz: np.ndarray, est_times_s: np.ndarray, est_f0_hz: np.ndarray
) -> tuple[float, float]:
    """(raw pitch accuracy, voicing recall) of an f0 track against a reference, mir_eval.melody on the
    reference's time grid. 0 Hz means unvoiced; raw pitch accuracy counts an unvoiced estimate on a
    voiced reference frame as wrong, an estimate within 50 cents as right."""
    import mir_eval

    est_f0 = np.nan_to_num(np.asarray(est_f0_hz, np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    ref_v, ref_c, est_v, est_c = mir_eval.melody.to_cent_voicing(
        np.asarray(ref_times_s, np.float64),
        np.asarray(ref_f0_hz, np.float64),
        np.asarray(est_times_s, np.float64),
        np.abs(est_f0),
    )
    if not np.any(ref_v):
        return float("nan"), float("nan")
    rpa = mir_eval.melody.raw_pitch_accuracy(ref_v, ref_c, est_v, est_c, cent_tolerance=CENTS_TOLERANCE)
    recall, _false_alarm = mir_eval.melody.voicing_measures(ref_v, est_v)
    return float(rpa), float(recall)


def pyin_track(
    x: np.ndarray, sample_rate: int, fmin_hz: float = PYIN_FMIN_HZ, fmax_hz: float = PYIN_FMAX_HZ
) -> tuple[np.ndarray, np.ndarray]:
    """(times_s, f0_hz with 0 where unvoiced) of `librosa.pyin` with its default settings at 22.05 kHz,
    over fmin_hz..fmax_hz (pYIN needs a range; its defaults do the rest)."""
    import librosa

    y = _mono(x)
    if sample_rate != PYIN_SR:
        y = librosa.resample(y, orig_sr=sample_rate, target_sr=PYIN_SR)
    f0, voiced, _prob = librosa.pyin(y, fmin=fmin_hz, fmax=fmax_hz, sr=PYIN_SR)
    times = librosa.times_like(f0, sr=PYIN_SR)
    return times, np.where(voiced, np.nan_to_num(f0, nan=0.0), 0.0)


def librosa_onsets(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """Onset times (s) by `librosa.onset.onset_detect` with its default settings."""
    import librosa

    return np.asarray(librosa.onset.onset_detect(y=_mono(x), sr=sample_rate, units="time"), np.float64)


def frame_rms_db(
    x: np.ndarray, sample_rate: int, frame_s: float = 0.046, hop_s: float = 0.0116
) -> np.ndarray:
    """RMS level (dBFS) per frame of the loudest channel (a channel left on alone is not silence)."""
    import librosa

    frame = max(1, round(frame_s * sample_rate))
    hop = max(1, round(hop_s * sample_rate))
    levels = []
    for ch in _channels(x).T:
        y = np.pad(ch, (0, max(0, frame - ch.size)))
        levels.append(librosa.feature.rms(y=y, frame_length=frame, hop_length=hop, center=False)[0])
    rms = np.max(levels, axis=0)
    return np.asarray(20.0 * np.log10(np.maximum(rms, 1e-10)), np.float64)


def envelope_correlation(a: np.ndarray, b: np.ndarray, sample_rate: int, smooth_s: float = 0.05) -> float:
    """Pearson correlation of the linear RMS envelopes of the two signals' mono downmixes (frames of
    smooth_s, hop a quarter of that)."""
    import librosa

    frame = max(1, round(smooth_s * sample_rate))
    hop = max(1, frame // 4)
    ea = librosa.feature.rms(y=_mono(a), frame_length=frame, hop_length=hop, center=False)[0]
    eb = librosa.feature.rms(y=_mono(b), frame_length=frame, hop_length=hop, center=False)[0]
    n = min(ea.size, eb.size)
    ea, eb = ea[:n].astype(np.float64), eb[:n].astype(np.float64)
    if n < 2 or ea.std() == 0 or eb.std() == 0:
        return 0.0
    return float(np.corrcoef(ea, eb)[0, 1])


def mfcc_mean(x: np.ndarray, sample_rate: int, silence_db: float = SILENT_DB) -> np.ndarray:
    """Mean of MFCC coefficients 1-13 (c0, the loudness, left out) over the frames above silence_db."""
    import librosa

    y = _mono(x)
    mf = librosa.feature.mfcc(y=y, sr=sample_rate, n_mfcc=14, n_fft=2048, hop_length=512)[1:]
    rms = librosa.feature.rms(y=y, frame_length=2048, hop_length=512)[0][: mf.shape[1]]
    active = 20.0 * np.log10(np.maximum(rms, 1e-10)) > silence_db
    if not active.any():
        active[:] = True
    return np.asarray(mf[:, active].mean(axis=1), np.float64)


def mfcc_distance(
    a: np.ndarray, b: np.ndarray, sample_rate_a: int, sample_rate_b: int | None = None
) -> float:
    """Euclidean distance between the mean MFCC (1-13) vectors of two sounds: a coarse timbre distance."""
    return float(np.linalg.norm(mfcc_mean(a, sample_rate_a) - mfcc_mean(b, sample_rate_b or sample_rate_a)))


def silence_kept(
    source: np.ndarray,
    rendered: np.ndarray,
    sample_rate: int,
    silent_db: float = SILENT_DB,
    stays_silent_db: float = STAYS_SILENT_DB,
) -> float:
    """Share of the frames where the source is below silent_db in which the rendered stem stays below
    stays_silent_db; nan when the source is never silent."""
    src = frame_rms_db(source, sample_rate)
    out = frame_rms_db(rendered, sample_rate)
    n = min(src.size, out.size)
    silent = src[:n] < silent_db
    if not silent.any():
        return float("nan")
    return float(np.mean(out[:n][silent] < stays_silent_db))


def true_peak_dbtp(x: np.ndarray, factors: tuple[int, ...] = (4, 8), block: int = 1 << 18) -> float:
    """True peak (dBTP) of every channel, by oversampling with `scipy.signal.resample_poly` at each
    factor and taking the largest magnitude. Blocks overlap by the filter's reach, so the result does not
    depend on the block size."""
    from scipy.signal import resample_poly

    peak = 0.0
    pad = 512  # input samples each side: more than resample_poly's filter reaches at these factors
    for ch in _channels(x).T.astype(np.float64):
        peak = max(peak, float(np.max(np.abs(ch), initial=0.0)))
        for f in factors:
            for start in range(0, ch.size, block):
                lo, hi = max(0, start - pad), min(ch.size, start + block + pad)
                up = resample_poly(ch[lo:hi], f, 1)
                keep = up[(start - lo) * f : (start - lo + min(block, ch.size - start)) * f]
                peak = max(peak, float(np.max(np.abs(keep), initial=0.0)))
    return float(20.0 * np.log10(max(peak, 1e-10)))


def one_shot_starts(style: np.ndarray, sample_rate: int) -> np.ndarray:
    """Sample positions of the one-shots of a kit recording: librosa's default onset detector,
    backtracked to the preceding energy minimum, then moved on to the first sample above 5 % of the
    one-shot's peak (the transient)."""
    import librosa

    y = _mono(style)
    frames = librosa.onset.onset_detect(y=y, sr=sample_rate, backtrack=True)
    starts = librosa.frames_to_samples(frames)
    # A one-shot at the very start of the recording has no rise before it for the detector to see.
    lead = np.abs(y[: max(1, round(0.02 * sample_rate))])
    if lead.max(initial=0.0) >= 0.05 * np.abs(y).max(initial=0.0) and (
        starts.size == 0 or starts[0] > lead.size
    ):
        starts = np.concatenate([[0], starts])
    ends = np.append(starts[1:], y.size)
    out = []
    for a, b in zip(starts, ends, strict=True):
        seg = np.abs(y[a:b])
        if seg.size and seg.max() > 0:
            out.append(a + int(np.argmax(seg >= 0.05 * seg.max())))
    return np.asarray(out, np.int64)


def _hit_mfcc(y: np.ndarray, sample_rate: int, starts: np.ndarray) -> np.ndarray:
    """(hits, 13) mean MFCC 1-13 over the frames (1024 samples, hop 256) that lie within the HIT_MFCC_S
    after each start and before the next start: a hit's own sound, not the next hit's attack (at least
    the frame at its start)."""
    import librosa

    n_fft, hop = 1024, 256
    padded = np.pad(y.astype(np.float32), (0, n_fft))
    mf = librosa.feature.mfcc(y=padded, sr=sample_rate, n_mfcc=14, n_fft=n_fft, hop_length=hop, center=False)
    mf = mf[1:]
    starts = np.asarray(starts, np.int64)
    ends = np.minimum(starts + round(HIT_MFCC_S * sample_rate), np.append(starts[1:], y.size))
    first = np.minimum(-(-starts // hop), mf.shape[1] - 1)
    last = np.maximum((ends - n_fft) // hop + 1, first + 1)
    csum = np.concatenate([np.zeros((mf.shape[0], 1)), np.cumsum(mf, axis=1, dtype=np.float64)], axis=1)
    last = np.minimum(last, mf.shape[1])
    return np.asarray(((csum[:, last] - csum[:, first]) / (last - first)).T, np.float64)


def drum_hit_mfcc_distance(
    stem: np.ndarray,
    kit: np.ndarray,
    onset_times_s: np.ndarray,
    sample_rate: int,
    kit_sample_rate: int | None = None,
) -> float:
    """Timbre distance of a drum stem to a kit, hit by hit: for each onset, the Euclidean distance
    between the mean MFCC (1-13) of the stem's first HIT_MFCC_S after it (up to the next onset) and that
    of its nearest one-shot of the kit (segmented at the kit's onsets), averaged over the onsets. Unlike
    the whole-stem `mfcc_distance`, the beat's mix of drums (how many hats per kick) does not weigh in:
    a beat played on the kit itself is at distance ~0 whatever its pattern."""
    kit_sr = kit_sample_rate or sample_rate
    y_kit = _mono(kit)
    kit_mfcc = _hit_mfcc(y_kit, kit_sr, one_shot_starts(y_kit, kit_sr))
    starts = np.round(np.asarray(onset_times_s, np.float64) * sample_rate).astype(np.int64)
    if starts.size == 0 or kit_mfcc.shape[0] == 0:
        return float("nan")
    hit_mfcc = _hit_mfcc(_mono(stem), sample_rate, starts)
    d = np.linalg.norm(hit_mfcc[:, None, :] - kit_mfcc[None, :, :], axis=2)
    return float(d.min(axis=1).mean())


def _best_match(window: np.ndarray, templates: list[np.ndarray]) -> tuple[int, int, float]:
    """(template, lag, normalised correlation) of the template that best matches somewhere in window."""
    from scipy.signal import correlate

    best = (-1, 0, -1.0)
    csum = np.concatenate([[0.0], np.cumsum(window.astype(np.float64) ** 2)])
    for k, t in enumerate(templates):
        m = t.size
        if window.size < m:
            continue
        c = correlate(window, t, mode="valid", method="fft")
        energy = np.sqrt(np.maximum(csum[m:] - csum[:-m], 1e-20)) * np.linalg.norm(t)
        ncc = c / np.maximum(energy, 1e-20)
        lag = int(np.argmax(ncc))
        if ncc[lag] > best[2]:
            best = (k, lag, float(ncc[lag]))
    return best


def drum_classes_heard(
    rendered: np.ndarray,
    sample_rate: int,
    onset_times_s: np.ndarray,
    one_shots: list[np.ndarray],
    one_shot_classes: list[str],
) -> list[set[str]]:
    """For each truth onset, the classes of the kit one-shots a rendered drum stem plays there: the
    one-shot (its first HIT_MATCH_S) that best matches the rendered audio near the onset (normalised
    cross-correlation over lags HIT_SEARCH_S), and a second one when, the first subtracted (least-squares
    gain), another one explains at least LAYER_MIN_SHARE of the hit's energy (a layered hat)."""
    y = _mono(rendered).astype(np.float64)
    m = max(8, round(HIT_MATCH_S * sample_rate))
    templates = [np.asarray(_mono(s)[:m], np.float64) for s in one_shots]
    lo, hi = (round(v * sample_rate) for v in HIT_SEARCH_S)
    heard: list[set[str]] = []
    for t in np.asarray(onset_times_s, np.float64):
        a = round(t * sample_rate) + lo
        b = round(t * sample_rate) + hi + m
        window = y[max(0, a) : max(0, b)]
        k, lag, ncc = _best_match(window, templates)
        if k < 0 or ncc <= 0.0:
            heard.append(set())
            continue
        classes = {one_shot_classes[k]}
        tpl = templates[k]
        seg = window[lag : lag + tpl.size]
        gain = float(seg @ tpl) / max(float(tpl @ tpl), 1e-20)
        residual = window.copy()
        residual[lag : lag + tpl.size] -= gain * tpl
        k2, _lag2, ncc2 = _best_match(residual, templates)
        explained = ncc2**2 * float(residual[lag : lag + m] @ residual[lag : lag + m])
        if k2 >= 0 and ncc2 >= LAYER_MIN_CORRELATION and explained >= LAYER_MIN_SHARE * float(seg @ seg):
            classes.add(one_shot_classes[k2])
        heard.append(classes)
    return heard
