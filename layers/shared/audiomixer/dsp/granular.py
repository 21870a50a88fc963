"""Granular re-rendering of a stem from a style sound's grains.

- percussive: at each onset of the stem, a descriptor-matched grain (k-d tree over normalised
  brightness and level, as a drum replacer picks a velocity layer) is scaled to the hit's peak, its
  own transient is placed on the stem's transient and it is choked at the next hit; the level is only
  ever lowered afterwards (no envelope boost, no clipping);
- tonal: Hann-windowed grains at 50% overlap, chosen by nearest descriptors (pitch, loudness,
  brightness, CataRT-style) and, with pitch mapping, transposed by resampling so that they follow the
  stem's f0 sample by sample (the read position advances by f0_target(t) / f0_grain);
- then an envelope follower (gain = target envelope / output envelope, smoothed and clamped), a
  silence gate, and the stem's per-channel level (pan) envelope.

Per-grain Python work only; every per-sample step is vectorised.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import maximum_filter1d, uniform_filter1d
from scipy.spatial import cKDTree

from ..mix_settings import GRAIN_MS_DEFAULT, GRAIN_MS_MAX, GRAIN_MS_MIN, StemMode
from .analysis import StemAnalysis, db, resample, to_mono
from .grains import GrainTable

Mode = StemMode
ENV_BLOCK_S = 0.005
CHUNK_SAMPLES = 1 << 20
CHOKE_S = 0.003  # fade-out of a percussive grain cut short by the next hit


def _blocks_ms(x: np.ndarray, block: int) -> np.ndarray:
    """Mean square per block along axis 0 (last partial block included)."""
    n = x.shape[0]
    nb = -(-n // block)
    pad = nb * block - n
    xx = np.pad(x, ((0, pad),) + ((0, 0),) * (x.ndim - 1)) if pad else x
    xx = xx.reshape((nb, block, *x.shape[1:])).astype(np.float32, copy=False)
    return np.asarray(np.einsum("ij...,ij...->i...", xx, xx) / block, np.float64)


def _expand(curve: np.ndarray, block: int, n: int) -> np.ndarray:
    """Per-block values (at block centres) -> per-sample curve, linear between block boundaries.
    Broadcast arithmetic on a (blocks, block) view: much cheaper than np.interp's search."""
    nb = curve.size
    knots = np.empty(nb + 1, np.float32)
    knots[0], knots[-1] = curve[0], curve[-1]
    knots[1:-1] = 0.5 * (curve[:-1] + curve[1:])
    frac = (np.arange(block, dtype=np.float32) + 0.5) / block
    full = knots[:-1, None] + (knots[1:] - knots[:-1])[:, None] * frac[None, :]
    return full.reshape(-1)[:n]


def _smooth_env(ms: np.ndarray, size: int) -> np.ndarray:
    # Running-sum filters can dip a hair below zero: clamp before the square root.
    return np.sqrt(np.maximum(uniform_filter1d(ms, size, axis=0, mode="nearest"), 0.0))


def follow_envelope_gain(
    out_ms: np.ndarray, target_ms: np.ndarray, *, size: int, max_gain_db: float = 30.0
) -> np.ndarray:
    """Per-block gain imposing the target's smoothed RMS envelope on the output (both mean squares per
    block): target envelope / output envelope, clamped, lightly smoothed."""
    gain = np.minimum(
        _smooth_env(target_ms, size) / np.maximum(_smooth_env(out_ms, size), 1e-9), 10 ** (max_gain_db / 20)
    )
    return uniform_filter1d(gain, 3, mode="nearest")


def _gate_edges(
    res: np.ndarray, x2: np.ndarray, open_b: np.ndarray, block: int, thr: float, ramp: int
) -> None:
    """Sample-accurate gate edges, in place: nothing before the first sample above `thr` in the first
    block of each open run, a short ramp-in after it, and a ramp-out at the end of each run."""
    n = res.shape[0]
    prev = np.concatenate([[False], open_b[:-1]])
    nxt = np.concatenate([open_b[1:], [False]])
    for b in np.nonzero(open_b & ~prev)[0].tolist():
        s, e = b * block, min(n, (b + 1) * block)
        loud = np.nonzero(np.abs(x2[s:e]).max(axis=-1) > thr)[0]
        first = s + (int(loud[0]) if loud.size else 0)
        res[s:first] = 0.0
        r = min(ramp, n - first)
        res[first : first + r] *= np.linspace(0.0, 1.0, r, endpoint=False, dtype=np.float32)[:, None]
    for b in np.nonzero(open_b & ~nxt)[0].tolist():
        e = min(n, (b + 1) * block)
        r = min(ramp, e)
        res[e - r : e] *= np.linspace(1.0, 0.0, r, dtype=np.float32)[:, None]


def _shape_output(
    out: np.ndarray,
    x2: np.ndarray,
    mono: np.ndarray,
    sr: int,
    use_envelope: bool,
    silence_db: float,
    *,
    keep_level: bool = False,
) -> np.ndarray:
    """Envelope follower (or a global level match, or none with `keep_level`), the stem's per-channel
    level (pan) envelope and the silence gate, all from one set of 5 ms block mean squares."""
    n, n_ch = x2.shape
    block = max(1, int(ENV_BLOCK_S * sr))
    ms_ch = _blocks_ms(x2, block)  # (blocks, channels)
    ms_m = _blocks_ms(mono, block)
    # Gate: open blocks where any channel is above the silence threshold, held one block after.
    thr = 10 ** (silence_db / 20.0)
    loud_b = ms_ch.max(axis=1) > thr * thr
    open_b = loud_b.copy()
    open_b[1:] |= loud_b[:-1]
    if keep_level:
        # Only ever lowered (where a grain's tail outlasts the stem's hit): never a boost, never a clip.
        gain = np.minimum(
            follow_envelope_gain(_blocks_ms(out, block), ms_m, size=max(1, round(0.015 / ENV_BLOCK_S))), 1.0
        )
    elif use_envelope:
        gain = follow_envelope_gain(_blocks_ms(out, block), ms_m, size=max(1, round(0.015 / ENV_BLOCK_S)))
    else:
        w = open_b.astype(np.float64)
        r_t, r_o = float((ms_m * w).sum()), float((_blocks_ms(out, block) * w).sum())
        gain = np.full(ms_m.size, np.sqrt(r_t / r_o) if r_o > 0 else 0.0)
    if n_ch > 1:
        sm_ch, sm_m = _smooth_env(ms_ch, 6), _smooth_env(ms_m, 6)
        pan = np.where(sm_m[:, None] > 1e-7, sm_ch / np.maximum(sm_m[:, None], 1e-7), 1.0)
        curves = gain[:, None] * np.clip(pan, 0.0, 2.0)
    else:
        curves = gain[:, None]
    curves = np.nan_to_num(curves) * open_b[:, None]
    res = np.empty((n, n_ch), np.float32)
    for c in range(n_ch):
        res[:, c] = out * _expand(curves[:, c], block, n)
    # Closed blocks are exactly silent (the linear expansion leaks half a block into them).
    nb_full = n // block
    view = res[: nb_full * block].reshape(nb_full, block, n_ch)
    view *= open_b[:nb_full, None, None]
    if n > nb_full * block and not open_b[-1]:
        res[nb_full * block :] = 0.0
    _gate_edges(res, x2, open_b, block, thr, ramp=max(1, sr // 1000))
    return res


def _zscore(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float64)
    sd = float(v.std())
    return (v - v.mean()) / (sd if sd > 1e-6 else 1.0)


def _choose(tree: cKDTree, queries: np.ndarray, n_points: int, rng: np.random.Generator) -> np.ndarray:
    """Nearest neighbour, with a seeded pick among near-ties (within 0.3 normalised units) for variety."""
    k = min(3, n_points)
    dist, idx = tree.query(queries, k=k)
    if k == 1:
        return np.asarray(idx, np.int64).reshape(-1)
    dist = np.asarray(dist).reshape(len(queries), k)
    idx = np.asarray(idx).reshape(len(queries), k)
    ok = dist <= dist[:, :1] + 0.3
    n_ok = ok.sum(axis=1)
    pick = np.minimum((rng.random(len(queries)) * n_ok).astype(int), n_ok - 1)
    return idx[np.arange(len(queries)), pick].astype(np.int64)


def _render_percussive(
    mono: np.ndarray,
    sr: int,
    analysis: StemAnalysis,
    style: np.ndarray,
    starts: np.ndarray,
    table: GrainTable,
    length: int,
    rng: np.random.Generator,
) -> np.ndarray:
    n = mono.size
    out = np.zeros(n, np.float32)
    onsets = np.clip(np.round(analysis.onset_times_s * sr).astype(np.int64), 0, max(0, n - 1))
    if onsets.size == 0 or table.n_grains == 0:
        return out
    cand = np.nonzero(table.onset_aligned)[0]
    if cand.size == 0:
        cand = np.arange(table.n_grains)
    # Distribution-matched descriptors: the stem's brightest hit maps to the pack's brightest sample.
    g_desc = np.stack(
        [_zscore(np.log2(table.centroid_hz[cand] + 1.0)), 0.6 * _zscore(db(table.peak[cand]))], 1
    )
    peaks = analysis.onset_peaks.astype(np.float64)
    t_desc = np.stack([_zscore(np.log2(analysis.onset_centroids_hz + 1.0)), 0.6 * _zscore(db(peaks))], 1)
    chosen = cand[_choose(cKDTree(g_desc), t_desc, cand.size, rng)]
    fade_out = max(2, min(length // 4, int(0.03 * sr)))
    fade_in = max(1, min(length // 8, int(0.0005 * sr)))
    env = np.ones(length, np.float32)
    env[:fade_in] = np.linspace(0.0, 1.0, fade_in, endpoint=False)
    env[-fade_out:] = 0.5 + 0.5 * np.cos(np.linspace(0.0, np.pi, fade_out))
    choke = max(2, int(CHOKE_S * sr))
    nxt = np.append(onsets[1:], n + length)
    for o, o_next, gi, pk in zip(onsets, nxt, chosen, peaks, strict=True):
        s0 = int(starts[gi])
        # As a drum replacer: the grain starts at the sample's own transient (onset-aligned grains start
        # at the refined transient of the style sound) and sits on the stem's refined transient; it is
        # choked just before the next hit, so each hit keeps a clean attack and tails never pile up.
        end = min(length, int(o_next - o), n - int(o))
        if end <= 0:
            continue
        grain = style[s0 : s0 + end] * env[:end]
        if grain.size == 0:
            continue
        if end < length:
            k = min(choke, grain.size)
            grain[-k:] *= np.linspace(1.0, 0.0, k, dtype=np.float32)
        g_peak = float(np.abs(grain).max())
        if g_peak <= 0.0:
            continue
        # Scaled to the hit's peak level (the stem's peak within 50 ms of its transient).
        out[int(o) : int(o) + grain.size] += grain * np.float32(pk / g_peak)
    return out


def _render_tonal(
    mono: np.ndarray,
    sr: int,
    analysis: StemAnalysis,
    style: np.ndarray,
    starts: np.ndarray,
    table: GrainTable,
    length: int,
    rng: np.random.Generator,
    use_pitch_mapping: bool,
    use_envelope: bool,
) -> np.ndarray:
    n = mono.size
    out = np.zeros(n + length, np.float32)
    length -= length % 2
    hop = length // 2
    half = length // 2
    n_frames = analysis.rms.size
    centres = np.arange(0, n + hop, hop, dtype=np.int64)
    fi = np.clip(np.round(centres / sr / analysis.hop_s).astype(np.int64), 0, n_frames - 1)
    span_frames = int(np.ceil(length / sr / analysis.hop_s)) + 1
    active_frames = maximum_filter1d((~analysis.silence).astype(np.uint8), span_frames, mode="constant") > 0
    keep = active_frames[fi]
    centres, fi = centres[keep], fi[keep]
    if centres.size == 0 or table.n_grains == 0:
        return out[:n]

    t_voiced = analysis.voiced_prob[fi] >= 0.5
    t_f0 = analysis.f0_hz[fi].astype(np.float64)
    t_loud = db(analysis.rms[fi].astype(np.float64))
    t_cen = np.log2(analysis.centroid_hz[fi].astype(np.float64) + 1.0)
    g_loud = table.loudness_db.astype(np.float64)
    g_cen = np.log2(table.centroid_hz.astype(np.float64) + 1.0)
    # Loudness/brightness are matched by rank (z-scores of each corpus); pitch in absolute octaves.
    tz_l, tz_c = 0.5 * _zscore(t_loud), _zscore(t_cen)
    gz_l, gz_c = 0.5 * _zscore(g_loud), _zscore(g_cen)
    choice = np.empty(centres.size, np.int64)
    g_voiced = np.nonzero(table.f0_hz > 0)[0]
    q_voiced = np.nonzero(t_voiced)[0] if g_voiced.size else np.zeros(0, np.int64)
    q_other = np.setdiff1d(np.arange(centres.size), q_voiced)
    if q_voiced.size:
        w_pitch = 1.0 if use_pitch_mapping else 4.0
        g_desc = np.stack([w_pitch * np.log2(table.f0_hz[g_voiced]), gz_l[g_voiced], gz_c[g_voiced]], 1)
        t_desc = np.stack([w_pitch * np.log2(t_f0[q_voiced]), tz_l[q_voiced], tz_c[q_voiced]], 1)
        choice[q_voiced] = g_voiced[_choose(cKDTree(g_desc), t_desc, g_voiced.size, rng)]
    if q_other.size:
        g_desc = np.stack([gz_l, gz_c], 1)
        t_desc = np.stack([tz_l[q_other], tz_c[q_other]], 1)
        choice[q_other] = _choose(cKDTree(g_desc), t_desc, table.n_grains, rng)

    g_f0 = table.f0_hz[choice].astype(np.float64)
    # Every pitched grain follows the (nearest voiced) f0 when mapping: an untransposed grain overlapping
    # a note's unvoiced attack frames would sound its own pitch for half a grain.
    transpose = np.asarray(use_pitch_mapping & (g_f0 > 0) & bool(np.any(analysis.voiced_prob >= 0.5)))
    if use_envelope:
        # Pre-scale to the target level; the envelope follower does the fine work.
        gains = 10 ** (np.clip(t_loud - g_loud[choice], -40.0, 40.0) / 20.0)
    else:
        gains = np.ones(centres.size)
    # f0 track with unvoiced frames filled from the nearest voiced one, so a grain crossing a voicing
    # boundary keeps its pitch; frame i sits at sample i * hop_s * sr. C is its running integral
    # (Hz * samples): a transposed grain reads the source at s0 + (C(t) - C(a)) / f0_grain, i.e. its
    # read rate is f0_target(t) / f0_grain sample by sample.
    f0_filled = _fill_unvoiced(analysis.f0_hz.astype(np.float64), analysis.voiced_prob >= 0.5)
    frame_pos = np.arange(n_frames) * analysis.hop_s * sr
    step = 0.5 * (f0_filled[1:] + f0_filled[:-1]) * np.diff(frame_pos)
    c_frames = np.concatenate([[0.0], np.cumsum(step)])
    # Past the last frame, C keeps rising at the last f0.
    frame_pos = np.append(frame_pos, frame_pos[-1] + 2.0 * length + sr)
    c_frames = np.append(c_frames, c_frames[-1] + f0_filled[-1] * (2.0 * length + sr))
    window = (np.hanning(length + 1)[:-1]).astype(np.float32)
    n_style = style.size
    # Padding lets every grain read past the end without bounds checks (looping covers the rest).
    style_ext = np.concatenate([style, np.zeros(length + 2, np.float32)]).astype(np.float32)
    style_win = np.lib.stride_tricks.sliding_window_view(style_ext, length)
    src_starts = starts[choice].astype(np.float64)
    per_chunk = max(1, CHUNK_SAMPLES // length)
    for c0 in range(0, centres.size, per_chunk):
        sl = slice(c0, min(centres.size, c0 + per_chunk))
        out_start = centres[sl] - half
        m = out_start.size
        tr = transpose[sl]
        fg = g_f0[sl]
        s0 = src_starts[sl].copy()
        c_a = np.interp(out_start, frame_pos, c_frames)
        span = np.full(m, float(length - 1))
        if tr.any():
            c_end = np.interp(out_start + length - 1, frame_pos, c_frames)
            span[tr] = (c_end[tr] - c_a[tr]) / fg[tr]
        # Phase continuity (pitch-synchronous placement): start each pitched grain where the source's
        # phase matches a global running phase (C for transposed grains, f0_grain * t otherwise), so
        # overlapping grains add in phase instead of beating.
        pitched = fg > 0
        phase_ref = np.where(tr, c_a, fg * out_start)
        period = sr / np.maximum(fg, 1e-6)
        cycles = np.mod(phase_ref / sr - fg * s0 / sr, 1.0)
        s0 = np.where(pitched, s0 + cycles * period, s0)
        overrun = np.maximum(0.0, s0 + span - (n_style - 1))
        back = np.where(pitched, np.ceil(overrun / period) * period, overrun)
        s0 = np.maximum(0.0, s0 - back)

        grains = np.empty((m, length), np.float32)
        plain = np.nonzero(~tr)[0]
        if plain.size:
            # Untransposed: whole-sample reads (the phase shift is rounded, < half a sample).
            idx = np.minimum(np.round(s0[plain]).astype(np.int64), style_win.shape[0] - 1)
            grains[plain] = style_win[idx]
        rows = np.nonzero(tr)[0]
        if rows.size:
            lo = int(out_start[rows].min())
            hi = int(out_start[rows].max()) + length
            c_span = np.interp(np.arange(lo, hi, dtype=np.float64), frame_pos, c_frames)
            c_win = np.lib.stride_tricks.sliding_window_view(c_span, length)
            rel = c_win[out_start[rows] - lo] - c_a[rows, None]
            pos = rel / fg[rows, None] + s0[rows, None]
            if float(pos.max()) >= n_style - 1:
                # A grain longer than the whole style sound loops through it.
                pos = np.mod(pos, max(1, n_style - 1))
            i0 = pos.astype(np.int64)
            frac = (pos - i0).astype(np.float32)
            lo_v = style_ext[i0]
            grains[rows] = lo_v + (style_ext[i0 + 1] - lo_v) * frac
        grains *= window
        grains *= gains[sl, None].astype(np.float32)
        for r in range(m):
            a = int(out_start[r])
            if a >= 0:
                out[a : a + length] += grains[r]
            elif a + length > 0:
                out[: a + length] += grains[r, -a:]
    return out[:n]


def _fill_unvoiced(f0: np.ndarray, voiced: np.ndarray) -> np.ndarray:
    if not voiced.any():
        return np.full_like(f0, 100.0)
    idx = np.nonzero(voiced)[0]
    return np.interp(np.arange(f0.size), idx, f0[idx])


def render_stem(
    stem_samples: np.ndarray,
    sample_rate: int,
    analysis: StemAnalysis,
    style_samples: np.ndarray,
    style_sr: int,
    grain_table: GrainTable,
    *,
    grain_ms: float = GRAIN_MS_DEFAULT,
    use_pitch_mapping: bool = True,
    use_envelope: bool = True,
    mode: Mode = "auto",
    seed: int = 0,
) -> np.ndarray:
    """Re-render a stem ((n,) or (n, channels) float at `sample_rate`) from a style sound's grains.
    Returns float32 audio of the stem's shape; the same inputs and seed give the same output."""
    if not GRAIN_MS_MIN <= grain_ms <= GRAIN_MS_MAX:
        raise ValueError(f"grain_ms must be within {GRAIN_MS_MIN:g}..{GRAIN_MS_MAX:g}, got {grain_ms}")
    if mode not in ("auto", "percussive", "tonal"):
        raise ValueError(f"bad mode {mode!r}")
    x = np.asarray(stem_samples, dtype=np.float32)
    x2 = x[:, None] if x.ndim == 1 else x
    n = x2.shape[0]
    if n == 0:
        return np.zeros_like(x)
    mono = to_mono(x2)
    style = to_mono(style_samples)
    if style.size == 0:
        raise ValueError("empty style sound")
    style = resample(style, style_sr, sample_rate)
    scale = sample_rate / grain_table.sample_rate
    starts = np.clip(np.round(grain_table.starts * scale).astype(np.int64), 0, style.size - 1)
    length = max(2, round(grain_ms * 1e-3 * sample_rate))
    rng = np.random.default_rng(seed)
    kind = analysis.kind if mode == "auto" else mode

    if kind == "percussive":
        out = _render_percussive(mono, sample_rate, analysis, style, starts, grain_table, length, rng)
    else:
        out = _render_tonal(
            mono,
            sample_rate,
            analysis,
            style,
            starts,
            grain_table,
            length,
            rng,
            use_pitch_mapping,
            use_envelope,
        )
    # Percussive grains already carry each hit's level: only the pan envelope and the gate apply.
    res = _shape_output(
        out, x2, mono, sample_rate, use_envelope, analysis.silence_db, keep_level=kind == "percussive"
    )
    return res[:, 0] if x.ndim == 1 else res
