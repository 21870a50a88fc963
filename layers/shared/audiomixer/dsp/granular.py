"""Granular re-rendering of a stem from a style sound's grains.

- percussive: at each onset of the stem, the style kit's one-shot of the same drum (kick, snare, hat,
  tom, cymbal, told apart by descriptors that name the drum rather than the recording, drum_hits; the
  velocity layer by level rank, as a drum replacer) is scaled to the hit's peak, its own transient is
  placed on the stem's transient and it is choked at the next hit; the level is only ever lowered
  afterwards (no envelope boost, no clipping);
- tonal: Hann-windowed grains at 50% overlap, chosen by nearest descriptors (pitch, loudness,
  brightness, CataRT-style) and, with pitch mapping, transposed by resampling so that they follow the
  stem's f0 sample by sample (the read position advances by f0_target(t) / f0_grain), each starting
  at the running phase by its own measured phase (pitch-synchronous, so overlapping grains add in
  phase) and reading only inside its own note of the style (backed off, or looped by whole periods, so
  a note two octaves up never reads into the next note), from a style
  version pre-filtered to keep its spectral envelope at that transposition (envelope_shift), so a
  bright style read an octave down still sounds like itself; short unvoiced stretches inside a sounding
  note hold the note's pitch; a zero, NaN or infinite f0 reads as unvoiced;
- then an envelope follower (gain = target envelope / output envelope, smoothed and clamped), a
  silence gate, and the stem's per-channel level (pan) envelope; a stereo style keeps its image;
- last, a true-peak limiter at STEM_CEILING_DBTP: no rendered stem clips.

Per-grain Python work only; every per-sample step is vectorised.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import maximum_filter1d, uniform_filter1d
from scipy.spatial import cKDTree

from ..mix_settings import GRAIN_MS_DEFAULT, GRAIN_MS_MAX, GRAIN_MS_MIN, StemMode
from .analysis import StemAnalysis, db, to_mono
from .audio_io import resample
from .drum_hits import describe_hits, drum_distances
from .envelope_shift import EnvelopeShifter
from .grains import FUNDAMENTAL_PERIODS, ONE_PITCH_CENTS, GrainTable, fundamental
from .mixer import limit_true_peak
from .polyphony import chord_voices, voice_analyses

Mode = StemMode
ENV_BLOCK_S = 0.005
# Grain samples read per chunk of the tonal renderer: its (grains, length) float64 read positions then
# stay near the CPU's cache (measured fastest at 2^17 of 2^14..2^20; the audio does not depend on it).
CHUNK_SAMPLES = 1 << 17
CHOKE_S = 0.003  # fade-out of a percussive grain cut short by the next hit
# One-shots this close in drum descriptors are the same drum (a seeded pick among them); the hit's level
# rank then chooses among a drum's velocity layers with this weight.
DRUM_TIE = 0.02
LEVEL_WEIGHT = 0.05
PICK_BLOCK = 1024  # hits matched at a time: memory bounded by (block, one-shots)
# Unvoiced but sounding frames next to a voiced one are held at the note's pitch for up to this long.
BRIDGE_MAX_S = 0.5
# Transpositions smaller than this are plain resampling (the envelope barely moves); larger ones read
# from a style version pre-filtered to keep its envelope, one per whole semitone up to three octaves.
ENVELOPE_KEEP_FROM_SEMITONES = 1.5
MAX_ENVELOPE_STEPS = 36
# Every rendered stem is true-peak limited here, so no stem written or stored clips.
STEM_CEILING_DBTP = -1.0
# Seconds of style audio pre-filtered per render before the steps are coarsened (bounds that work).
VERSION_BUDGET_S = 60.0


def _blocks_ms(x: np.ndarray, block: int) -> np.ndarray:
    """Mean square per block along axis 0 (last partial block included)."""
    n = x.shape[0]
    full = n // block
    x32 = x.astype(np.float32, copy=False)
    # Whole blocks as a view; only the partial last block is copied (zero-padded), not the whole stem.
    head = x32[: full * block].reshape((full, block, *x.shape[1:]))
    ms = np.einsum("ij...,ij...->i...", head, head)
    if full * block < n:
        tail = np.zeros((1, block, *x.shape[1:]), np.float32)
        tail[0, : n - full * block] = x32[full * block :]
        ms = np.concatenate([ms, np.einsum("ij...,ij...->i...", tail, tail)])
    return np.asarray(ms / block, np.float64)


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
    return np.asarray(np.sqrt(np.maximum(uniform_filter1d(ms, size, axis=0, mode="nearest"), 0.0)))


def follow_envelope_gain(
    out_ms: np.ndarray, target_ms: np.ndarray, *, size: int, max_gain_db: float = 30.0
) -> np.ndarray:
    """Per-block gain imposing the target's smoothed RMS envelope on the output (both mean squares per
    block): target envelope / output envelope, clamped, lightly smoothed."""
    gain = np.minimum(
        _smooth_env(target_ms, size) / np.maximum(_smooth_env(out_ms, size), 1e-9), 10 ** (max_gain_db / 20)
    )
    return np.asarray(uniform_filter1d(gain, 3, mode="nearest"))


def _gate_edges(
    res: np.ndarray, x2: np.ndarray, open_b: np.ndarray, block: int, thr: float, ramp: int
) -> None:
    """Sample-accurate gate edges, in place: nothing before the first sample above `thr` in the first
    block of each open run, a short ramp-in after it, and a one-block ramp-out ending at the last sample
    above `thr` of each run."""
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
        # The run ends one block after its last loud block: the sound ramps out by the stem's last
        # sample above `thr` (a plucked note that stops dead leaves no grain tail behind it).
        s, e = max(0, (b - 1) * block), min(n, (b + 1) * block)
        loud = np.nonzero(np.abs(x2[s:e]).max(axis=-1) > thr)[0]
        stop = s + (int(loud[-1]) + 1 if loud.size else e - s)
        res[stop:e] = 0.0
        # A whole block's ramp: the follower's gain is one value per block, so a note's last block
        # would otherwise keep its level to the end where the stem fades out within it.
        r = min(block, stop)
        res[stop - r : stop] *= np.linspace(1.0, 0.0, r, dtype=np.float32)[:, None]


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
    level (pan) envelope and the silence gate, all from one set of 5 ms block mean squares. `out` is
    channel-major (channels, n) with one channel or the stem's channel count (a stereo style keeps its
    own image, shaped by the stem's pan); returns (n, channels) float32 with channels = max of the two."""
    n, n_stem_ch = x2.shape
    n_out_ch = out.shape[0]
    block = max(1, int(ENV_BLOCK_S * sr))
    ms_ch = _blocks_ms(x2, block)  # (blocks, channels)
    ms_m = _blocks_ms(mono, block)
    out_mono = out[0] if n_out_ch == 1 else to_mono(out.T)
    # Gate: open blocks where any channel is above the silence threshold, held one block after.
    thr = 10 ** (silence_db / 20.0)
    loud_b = ms_ch.max(axis=1) > thr * thr
    open_b = loud_b.copy()
    open_b[1:] |= loud_b[:-1]
    out_ms = _blocks_ms(out_mono, block)
    w = open_b.astype(np.float64)
    r_t, r_o = float((ms_m * w).sum()), float((out_ms * w).sum())
    level_match = np.full(ms_m.size, np.sqrt(r_t / r_o) if r_o > 0 else 0.0)
    if keep_level:
        # Only ever lowered (where a grain's tail outlasts the stem's hit): never a boost, never a clip.
        gain = np.minimum(follow_envelope_gain(out_ms, ms_m, size=max(1, round(0.015 / ENV_BLOCK_S))), 1.0)
    elif use_envelope:
        gain = follow_envelope_gain(out_ms, ms_m, size=max(1, round(0.015 / ENV_BLOCK_S)))
    else:
        gain = level_match
    if n_stem_ch > 1:
        sm_ch, sm_m = _smooth_env(ms_ch, 6), _smooth_env(ms_m, 6)
        pan = np.where(sm_m[:, None] > 1e-7, sm_ch / np.maximum(sm_m[:, None], 1e-7), 1.0)
        curves = gain[:, None] * np.clip(pan, 0.0, 2.0)
    else:
        curves = gain[:, None]
    curves = np.nan_to_num(curves) * open_b[:, None]
    n_res_ch = max(n_out_ch, n_stem_ch)
    res = np.empty((n, n_res_ch), np.float32)
    for c in range(n_res_ch):
        source = out[c if n_out_ch > 1 else 0]
        res[:, c] = source * _expand(curves[:, c if n_stem_ch > 1 else 0], block, n)
    # Closed blocks are exactly silent (the linear expansion leaks half a block into them).
    nb_full = n // block
    view = res[: nb_full * block].reshape(nb_full, block, n_res_ch)
    view *= open_b[:nb_full, None, None]
    if n > nb_full * block and not open_b[-1]:
        res[nb_full * block :] = 0.0
    _gate_edges(res, x2, open_b, block, thr, ramp=max(1, sr // 1000))
    return res


def _zscore(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float64)
    sd = float(v.std())
    return np.asarray((v - v.mean()) / (sd if sd > 1e-6 else 1.0))


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
    return np.asarray(idx[np.arange(len(queries)), pick], dtype=np.int64)


def _pick_shots(distances: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per row, the column of least distance, with a seeded pick among near-ties (the same one-shot
    recorded twice, say) for variety."""
    best = distances.min(axis=1, keepdims=True)
    ok = distances <= best + DRUM_TIE
    n_ok = ok.sum(axis=1)
    pick = np.minimum((rng.random(distances.shape[0]) * n_ok).astype(int), n_ok - 1)
    # The pick-th True of each row.
    return np.asarray((np.cumsum(ok, axis=1) > pick[:, None]).argmax(axis=1), np.int64)


def _percussive_grain(
    channel_major: np.ndarray, s0: int, end: int, length: int, env: np.ndarray, choke: int
) -> np.ndarray:
    """A one-shot's grain of `end` samples from `s0`, faded by `env` and choked when cut short; silent
    past the recording's end, so a hit's layered one-shots always line up with its own."""
    grain = channel_major[:, s0 : s0 + end]
    grain = grain * env[: grain.shape[1]]
    if 0 < grain.shape[1] < length:
        k = min(choke, grain.shape[1])
        grain[:, -k:] *= np.linspace(1.0, 0.0, k, dtype=np.float32)
    if grain.shape[1] < end:
        grain = np.pad(grain, ((0, 0), (0, end - grain.shape[1])))
    return np.asarray(grain, np.float32)


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
    """One one-shot of the same drum per onset; `style` is (n, channels), the output channel-major
    (channels, n). A hit holding two drums (a kick with a hat) takes the one that dominates its attack:
    layering a hat where the attack's cymbal band outgrew the chosen drum's was tried and, on real kits,
    mostly took a snare or kick brighter than the style kit's for one struck with a hat. A cymbal is
    the exception, told by its sustain rather than its brightness (drum_hits.cymbal_rings): where one
    rings under a hit whose chosen one-shot does not ring, the kit's most ringing one-shot (its crash)
    is layered, its top band at the hit's (a crash on a kick keeps both drums). So is a kick, told by the
    stem's own kick whole in the attack (drum_hits.kick_sounds): where one sounds under a hit whose
    chosen one-shot is no kick (a kick struck with a snare takes the snare), the kit's kick that the
    stem's kicks play is layered, its kick band at the hit's."""
    n = mono.size
    n_channels = style.shape[1]
    out = np.zeros((n_channels, n), np.float32)
    onsets = np.clip(np.round(analysis.onset_times_s * sr).astype(np.int64), 0, max(0, n - 1))
    if onsets.size == 0 or table.n_grains == 0:
        return out
    candidates = np.nonzero(table.onset_aligned)[0]
    # A one-shot cut short by the end of the recording (an "onset" in a sustained sound's release) is
    # only a fallback: it would end the hit before its grain length.
    whole = candidates[starts[candidates] + length <= style.shape[0]]
    candidates = whole if whole.size else candidates
    if candidates.size == 0:
        candidates = np.arange(table.n_grains)
    next_onsets = np.append(onsets[1:], n + length)
    # Which drum, as a drum replacer: the hit and the one-shots described alike by what names the drum
    # (band shares of the attack, noise, ring), not ranked against each other (ranks of brightness sent
    # a rock beat's closed hats to the kit's toms and crash), a kick to a kick first (a boomy snare took
    # them). Then the velocity layer by level rank.
    shot_starts = starts[candidates]
    shot_next = np.append(shot_starts[1:], style.shape[0])  # grain starts are in time order
    shots = describe_hits(to_mono(style), sr, shot_starts, shot_next)
    hits = describe_hits(mono, sr, onsets, next_onsets)
    peaks = np.nan_to_num(analysis.onset_peaks.astype(np.float64))
    hit_level = _zscore(db(peaks))
    shot_level = _zscore(db(table.peak[candidates].astype(np.float64)))
    chosen = np.empty(onsets.size, np.int64)
    for first in range(0, onsets.size, PICK_BLOCK):
        rows = slice(first, first + PICK_BLOCK)
        level_gap = hit_level[rows, None] - shot_level[None, :]
        chosen[rows] = _pick_shots(drum_distances(hits.rows(rows), shots) + LEVEL_WEIGHT * level_gap**2, rng)
    # A cymbal ringing under a drum: the kit's most ringing cymbal, layered (none if the kit has none).
    ringing = np.nonzero(shots.cymbal_rings)[0]
    layered = np.full(onsets.size, -1, np.int64)
    if ringing.size:
        cymbal = int(ringing[np.argmax(shots.top_ring_db[ringing])])
        layered[hits.cymbal_rings & ~shots.cymbal_rings[chosen]] = cymbal
    # Its level: the one-shot's top band at the hit's (as a trigger's velocity from the cymbal band).
    layer_top = shots.top_attack_power[np.maximum(layered, 0)]
    top_gain = np.sqrt(hits.top_attack_power / np.maximum(layer_top, 1e-20))
    # A kick sounding under another drum: the kit's kick the stem's own kicks play most (none if the kit
    # or the stem has no kick), layered at the peak the stem's kicks are played at, scaled by the hit's
    # kick band against theirs (a kick trigger's velocity). Matching the hit's kick band alone, as the
    # crash's top band is, played them 5 dB under the song's other kicks (disco: peaks 0.12 against 0.21).
    kick_layer = np.full(onsets.size, -1, np.int64)
    kick_gain = np.zeros(onsets.size)
    in_role = hits.is_kick & shots.is_kick[chosen]
    if in_role.any():
        kick = int(np.bincount(chosen[in_role]).argmax())
        kick_layer[hits.kick_sounds & ~shots.is_kick[chosen]] = kick
        s0 = int(shot_starts[kick])
        kick_shot_peak = float(np.abs(style[s0 : s0 + length]).max(initial=0.0))
        kick_level = np.sqrt(
            hits.band_energy[:, 0] / max(float(np.median(hits.band_energy[in_role, 0])), 1e-20)
        )
        kick_gain = float(np.median(peaks[in_role])) * kick_level / max(kick_shot_peak, 1e-20)
    fade_out = max(2, min(length // 4, int(0.03 * sr)))
    fade_in = max(1, min(length // 8, int(0.0005 * sr)))
    env = np.ones(length, np.float32)
    env[:fade_in] = np.linspace(0.0, 1.0, fade_in, endpoint=False)
    env[-fade_out:] = 0.5 + 0.5 * np.cos(np.linspace(0.0, np.pi, fade_out))
    channel_major = np.ascontiguousarray(style.T)
    choke = max(2, int(CHOKE_S * sr))
    layers = ((layered.tolist(), top_gain.tolist()), (kick_layer.tolist(), kick_gain.tolist()))
    for i, (onset, next_onset, shot, hit_peak) in enumerate(
        zip(onsets, next_onsets, chosen, peaks, strict=True)
    ):
        # As a drum replacer: the grain starts at the sample's own transient (onset-aligned grains start
        # at the refined transient of the style sound) and sits on the stem's refined transient; it is
        # choked just before the next hit, so each hit keeps a clean attack and tails never pile up.
        end = min(length, int(next_onset - onset), n - int(onset))
        if end <= 0:
            continue
        grain = _percussive_grain(channel_major, int(shot_starts[shot]), end, length, env, choke)
        g_peak = float(np.abs(grain).max()) if grain.size else 0.0
        if g_peak <= 0.0:
            continue
        # Scaled to the hit's peak level (the stem's peak within 50 ms of its transient).
        grain *= np.float32(hit_peak / g_peak)
        for layer_of, gain_of in layers:
            if layer_of[i] < 0:
                continue
            extra = _percussive_grain(channel_major, int(shot_starts[layer_of[i]]), end, length, env, choke)
            e_peak = float(np.abs(extra).max()) if extra.size else 0.0
            # Never above the hit's own peak: the layer adds its drum, it does not outgrow the hit.
            gain = min(gain_of[i], hit_peak / e_peak) if e_peak > 0.0 else 0.0
            grain[:, : extra.shape[1]] += extra * np.float32(gain)
        if kick_layer[i] >= 0:
            # The other drum's one-shot already takes the hit's whole peak, the kick's part of it too: the
            # two together are held there (on the corpus' 114 such hits, summed they peaked 1.6-6 dB
            # over, median 3.4 dB, and the louder backbeats hid the metal song's next sixteenth from an
            # onset detector).
            grain *= np.float32(min(1.0, hit_peak / max(float(np.abs(grain).max()), 1e-20)))
        out[:, int(onset) : int(onset) + grain.shape[1]] += grain
    return out


def _sanitised_f0(f0_hz: np.ndarray, voiced_prob: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(f0 with 0 wherever it is not a usable pitch, voiced mask): a zero, negative, NaN or infinite f0,
    or a NaN voicing probability, reads as unvoiced instead of reaching log2 and the k-d tree."""
    f0 = np.asarray(f0_hz, np.float64)
    usable = np.isfinite(f0) & (f0 > 0.0)
    if voiced_prob is not None:
        prob = np.nan_to_num(np.asarray(voiced_prob, np.float64), nan=0.0, posinf=1.0, neginf=0.0)
        usable &= prob >= 0.5
    return np.where(usable, f0, 0.0), usable


def _bridge_unvoiced(voiced: np.ndarray, silent: np.ndarray, max_gap_frames: int) -> np.ndarray:
    """Voiced mask with short unvoiced, sounding runs that touch a voiced frame marked voiced: inside a
    sounding note (an attack, a slap, a breathy frame) the note's pitch is held, not the grain's own."""
    bridged = voiced.copy()
    n = voiced.size
    gap = ~voiced & ~silent
    edges = np.diff(np.concatenate([[0], gap.astype(np.int8), [0]]))
    for a, b in zip(np.nonzero(edges == 1)[0].tolist(), np.nonzero(edges == -1)[0].tolist(), strict=True):
        touches = (a > 0 and voiced[a - 1]) or (b < n and voiced[b])
        if touches and b - a <= max_gap_frames:
            bridged[a:b] = True
    return bridged


def _fill_unvoiced(f0: np.ndarray, voiced: np.ndarray) -> np.ndarray:
    """f0 everywhere: unvoiced frames take the nearest voiced frame's f0 (a held note, never a glide
    between two notes); 100 Hz when nothing is voiced."""
    if not voiced.any():
        return np.full(f0.shape, 100.0)
    idx = np.nonzero(voiced)[0]
    pos = np.searchsorted(idx, np.arange(f0.size))
    left = idx[np.maximum(pos - 1, 0)]
    right = idx[np.minimum(pos, idx.size - 1)]
    frames = np.arange(f0.size)
    nearest = np.where(np.abs(frames - left) <= np.abs(right - frames), left, right)
    return np.asarray(f0[nearest], np.float64)


def note_spans(
    starts: np.ndarray, lengths: np.ndarray, f0_hz: np.ndarray, onset_aligned: np.ndarray, n_samples: int
) -> tuple[np.ndarray, np.ndarray]:
    """(first, end) sample of the note each grain belongs to: the run of time-consecutive grains that
    hold one pitch (within ONE_PITCH_CENTS of the run's first), a new run at every attack. A transposed
    grain reads only inside its note: read up two octaves it needs four grains' worth of its note, and
    past the note's end it would sound the next note (transposed), or the same pitch restarted at
    another phase. An unpitched grain's span is the whole sound.

    Parameters
    ----------
    starts, lengths : np.ndarray
        Each grain's first sample and length in samples.
    f0_hz : np.ndarray
        Each grain's pitch in Hz, 0 where it holds none.
    onset_aligned : np.ndarray
        Whether each grain starts at an attack.
    n_samples : int
        Length of the sound in samples.

    Returns
    -------
    first, end : np.ndarray
        int64 per grain: its note spans samples first..end-1.
    """
    first = np.zeros(starts.size, np.int64)
    end = np.full(starts.size, n_samples, np.int64)
    run: list[int] = []

    def close() -> None:
        if run:
            first[run] = int(starts[run].min())
            end[run] = min(n_samples, int((starts[run] + lengths[run]).max()))

    for i in np.argsort(starts, kind="stable").tolist():
        same = (
            bool(run)
            and f0_hz[i] > 0
            and not onset_aligned[i]
            and abs(1200.0 * np.log2(f0_hz[i] / f0_hz[run[0]])) <= ONE_PITCH_CENTS
        )
        if not same:
            close()
            run = []
        if f0_hz[i] > 0:
            run.append(i)
    close()
    return first, end


def _semitone_steps(read_rates: np.ndarray, style_s: float) -> np.ndarray:
    """Transposition step (semitones) per grain for the envelope-kept style versions (0 = the style as
    it is): whole semitones, coarsened while the versions would exceed VERSION_BUDGET_S of audio."""
    semitones = np.clip(12.0 * np.log2(read_rates), -MAX_ENVELOPE_STEPS, MAX_ENVELOPE_STEPS)
    plain = np.abs(semitones) < ENVELOPE_KEEP_FROM_SEMITONES
    for quantum in range(1, 13):
        steps = np.where(plain, 0, np.round(semitones / quantum).astype(np.int64) * quantum)
        if np.unique(steps).size * style_s <= VERSION_BUDGET_S:
            break
    return steps


class _TonalStyle:
    """What the tonal renderer derives from the style sound, its grain table and the settings alone,
    computed once per stem and shared by the voices of a chord stem (each voice would otherwise repeat
    it): grain descriptors and their k-d trees, note spans, the envelope shifter and its pre-filtered
    versions, and the grains' measured phases. Everything is computed on first use, as one voice does.

    Parameters
    ----------
    style : np.ndarray
        The style sound, (n, channels) float32 at `sr`.
    sr : int
        Sample rate in Hz.
    starts : np.ndarray
        Each grain's first sample in `style`.
    table : GrainTable
        The style's grains and descriptors.
    length_samples : int
        Grain length in samples (made even).
    use_pitch_mapping : bool
        Whether grains are transposed to follow the stem (sets the pitch weight of the grain choice).
    """

    def __init__(
        self,
        style: np.ndarray,
        sr: int,
        starts: np.ndarray,
        table: GrainTable,
        length_samples: int,
        *,
        use_pitch_mapping: bool,
    ) -> None:
        self.style, self.sr, self.starts, self.table = style, sr, starts, table
        self.length = length_samples - length_samples % 2
        self.n_style = style.shape[0]
        self.n_channels = style.shape[1]
        self.grain_f0_all, _ = _sanitised_f0(table.f0_hz)
        self.grain_loud = table.loudness_db.astype(np.float64)
        grain_bright = np.log2(table.centroid_hz.astype(np.float64) + 1.0)
        # Loudness/brightness are matched by rank (z-scores of each corpus); pitch in absolute octaves.
        self.grain_loud_z, self.grain_bright_z = 0.5 * _zscore(self.grain_loud), _zscore(grain_bright)
        self.pitched_grains = np.nonzero(self.grain_f0_all > 0)[0]
        self.w_pitch = 1.0 if use_pitch_mapping else 4.0
        self.window = (np.hanning(self.length + 1)[:-1]).astype(np.float32)
        self._pitched_tree: cKDTree | None = None
        self._any_tree: cKDTree | None = None
        self._note_spans: tuple[np.ndarray, np.ndarray] | None = None
        self._shifter: EnvelopeShifter | None = None
        self._versions: dict[int, np.ndarray] = {}
        self._phase: dict[int, float] = {}
        self._mono: np.ndarray | None = None

    @property
    def pitched_tree(self) -> cKDTree:
        """k-d tree over the pitched grains' (weighted log2 pitch, loudness z, brightness z)."""
        if self._pitched_tree is None:
            p = self.pitched_grains
            self._pitched_tree = cKDTree(
                np.stack(
                    [
                        self.w_pitch * np.log2(self.grain_f0_all[p]),
                        self.grain_loud_z[p],
                        self.grain_bright_z[p],
                    ],
                    1,
                )
            )
        return self._pitched_tree

    @property
    def any_tree(self) -> cKDTree:
        """k-d tree over every grain's (loudness z, brightness z)."""
        if self._any_tree is None:
            self._any_tree = cKDTree(np.stack([self.grain_loud_z, self.grain_bright_z], 1))
        return self._any_tree

    @property
    def note_spans(self) -> tuple[np.ndarray, np.ndarray]:
        """(first, end) sample of each grain's note in the style (see `note_spans`)."""
        if self._note_spans is None:
            table = self.table
            self._note_spans = note_spans(
                self.starts,
                np.round(table.lengths * (self.n_style / table.n_samples)).astype(np.int64),
                self.grain_f0_all,
                table.onset_aligned,
                self.n_style,
            )
        return self._note_spans

    @property
    def shifter(self) -> EnvelopeShifter:
        """The style's envelope shifter (its STFT and spectral envelope)."""
        if self._shifter is None:
            voiced_f0 = self.grain_f0_all[self.grain_f0_all > 0]
            self._shifter = EnvelopeShifter(
                self.style, self.sr, float(np.median(voiced_f0)) if voiced_f0.size else 0.0
            )
        return self._shifter

    def version(self, step: int, shifted: bool) -> np.ndarray:
        """The style pre-filtered for a read `step` semitones away (the style itself for step 0 or
        without envelope shifting), (n, channels) float32."""
        if step == 0 or not shifted:
            return self.style
        if step not in self._versions:
            self._versions[step] = self.shifter.for_rate(2.0 ** (step / 12.0))
        return self._versions[step]

    def grain_phases(self, grains: np.ndarray) -> np.ndarray:
        """Each (pitched) grain's own phase at its start in cycles, measured on the style: a window from
        its start on, referred back to its start (the style's notes start at arbitrary phases)."""
        todo = np.array([g for g in grains.tolist() if g not in self._phase], np.int64)
        if todo.size:
            if self._mono is None:
                self._mono = to_mono(self.style)
            todo_f0 = self.grain_f0_all[todo]
            ahead = 0.5 * FUNDAMENTAL_PERIODS * self.sr / todo_f0
            measured, _ = fundamental(self._mono, self.starts[todo] + ahead, todo_f0, self.sr)
            measured = np.mod(measured - todo_f0 * ahead / self.sr, 1.0)
            self._phase.update(zip(todo.tolist(), measured.tolist(), strict=True))
        return np.array([self._phase[g] for g in grains.tolist()], np.float64)


def _render_tonal(
    mono: np.ndarray,
    sr: int,
    analysis: StemAnalysis,
    prep: _TonalStyle,
    rng: np.random.Generator,
    *,
    use_pitch_mapping: bool,
    use_envelope: bool,
) -> np.ndarray:
    """Overlapping grains following the stem's pitch, from the style prepared in `prep`; the output is
    channel-major (channels, n)."""
    n = mono.size
    starts, table = prep.starts, prep.table
    n_channels = prep.n_channels
    length = prep.length
    out = np.zeros((n_channels, n + length), np.float32)
    hop = length // 2
    half = length // 2
    n_frames = analysis.rms.size
    centres = np.arange(0, n + hop, hop, dtype=np.int64)
    frame_of = np.clip(np.round(centres / sr / analysis.hop_s).astype(np.int64), 0, n_frames - 1)
    span_frames = int(np.ceil(length / sr / analysis.hop_s)) + 1
    active_frames = maximum_filter1d((~analysis.silence).astype(np.uint8), span_frames, mode="constant") > 0
    keep = active_frames[frame_of]
    centres, frame_of = centres[keep], frame_of[keep]
    if centres.size == 0 or table.n_grains == 0:
        return out[:, :n]

    stem_f0, stem_voiced = _sanitised_f0(analysis.f0_hz, analysis.voiced_prob)
    if use_pitch_mapping:
        max_gap = max(1, round(BRIDGE_MAX_S / analysis.hop_s))
        stem_voiced = _bridge_unvoiced(stem_voiced, np.asarray(analysis.silence, bool), max_gap)
    grain_f0_all = prep.grain_f0_all
    target_voiced = stem_voiced[frame_of]
    # f0 track with unvoiced frames held at the nearest voiced one, so a grain crossing a voicing
    # boundary keeps its note's pitch.
    f0_filled = _fill_unvoiced(stem_f0, stem_f0 > 0)
    target_f0 = f0_filled[frame_of]
    target_loud = db(np.nan_to_num(analysis.rms[frame_of].astype(np.float64)))
    target_bright = np.log2(np.nan_to_num(analysis.centroid_hz[frame_of].astype(np.float64)) + 1.0)
    grain_loud = prep.grain_loud
    # Loudness/brightness are matched by rank (z-scores of each corpus); pitch in absolute octaves.
    target_loud_z, target_bright_z = 0.5 * _zscore(target_loud), _zscore(target_bright)
    choice = np.empty(centres.size, np.int64)
    pitched_grains = prep.pitched_grains
    voiced_queries = np.nonzero(target_voiced)[0] if pitched_grains.size else np.zeros(0, np.int64)
    other_queries = np.setdiff1d(np.arange(centres.size), voiced_queries)
    if voiced_queries.size:
        query_desc = np.stack(
            [
                prep.w_pitch * np.log2(target_f0[voiced_queries]),
                target_loud_z[voiced_queries],
                target_bright_z[voiced_queries],
            ],
            1,
        )
        picked = _choose(prep.pitched_tree, query_desc, pitched_grains.size, rng)
        choice[voiced_queries] = pitched_grains[picked]
    if other_queries.size:
        query_desc = np.stack([target_loud_z[other_queries], target_bright_z[other_queries]], 1)
        choice[other_queries] = _choose(prep.any_tree, query_desc, table.n_grains, rng)

    grain_f0 = grain_f0_all[choice]
    # Every pitched grain follows the (nearest voiced) f0 when mapping: an untransposed grain overlapping
    # a note's unvoiced attack frames would sound its own pitch for half a grain.
    transpose = use_pitch_mapping & (grain_f0 > 0) & bool(np.any(stem_f0 > 0))
    if use_envelope:
        # Pre-scale to the target level; the envelope follower does the fine work.
        gains = 10 ** (np.clip(target_loud - grain_loud[choice], -40.0, 40.0) / 20.0)
    else:
        gains = np.ones(centres.size)
    # Frame i sits at sample i * hop_s * sr. `f0_integral` is the running integral of the f0 track
    # (Hz * samples): a transposed grain reads the source at s0 + (C(t) - C(a)) / f0_grain, i.e. its
    # read rate is f0_target(t) / f0_grain sample by sample.
    frame_pos = np.arange(n_frames) * analysis.hop_s * sr
    step = 0.5 * (f0_filled[1:] + f0_filled[:-1]) * np.diff(frame_pos)
    f0_integral = np.concatenate([[0.0], np.cumsum(step)])
    # Past the last frame, C keeps rising at the last f0.
    frame_pos = np.append(frame_pos, frame_pos[-1] + 2.0 * length + sr)
    f0_integral = np.append(f0_integral, f0_integral[-1] + f0_filled[-1] * (2.0 * length + sr))

    # Style versions pre-filtered to keep the spectral envelope under each grain's transposition,
    # laid end to end in one bank (each padded so reads run past its end without bounds checks).
    n_style = prep.n_style
    steps = np.zeros(centres.size, np.int64)
    shifted = False
    if transpose.any():
        shifted = prep.shifter.strength > 0
        if shifted:
            rates = target_f0[transpose] / grain_f0[transpose]
            steps[transpose] = _semitone_steps(rates, n_style / sr)
    used_steps = np.unique(steps)
    stride = n_style + length + 2
    bank = np.zeros((n_channels, used_steps.size * stride), np.float32)
    for i, k in enumerate(used_steps.tolist()):
        bank[:, i * stride : i * stride + n_style] = prep.version(k, shifted).T
    bank_offset = (np.searchsorted(used_steps, steps) * stride).astype(np.float64)

    window = prep.window
    src_starts = starts[choice].astype(np.float64)
    # Each chosen pitched grain's own phase at its start, measured on the style: the style's notes
    # start at arbitrary phases, so its phase cannot be inferred from the position and the f0.
    grain_phase = np.zeros(centres.size)
    used = np.unique(choice[grain_f0 > 0])
    if used.size:
        measured = prep.grain_phases(used)
        where = np.minimum(np.searchsorted(used, choice), used.size - 1)
        grain_phase = np.where(grain_f0 > 0, measured[where], 0.0)
    # Pitched grains read inside their own note only (backed off, then looped by whole periods).
    note_first, note_end = prep.note_spans
    read_first = note_first[choice].astype(np.float64)
    read_end = note_end[choice].astype(np.float64)
    per_chunk = max(1, CHUNK_SAMPLES // length)
    for c0 in range(0, centres.size, per_chunk):
        sl = slice(c0, min(centres.size, c0 + per_chunk))
        out_start = centres[sl] - half
        m = out_start.size
        moving = transpose[sl]
        f0_grain = grain_f0[sl]
        # This chunk's grains' style versions (`plain` and `rows` below index the chunk).
        offset = bank_offset[sl]
        s0 = src_starts[sl].copy()
        integral_at_start = np.interp(out_start, frame_pos, f0_integral)
        span = np.full(m, float(length - 1))
        if moving.any():
            integral_at_end = np.interp(out_start + length - 1, frame_pos, f0_integral)
            span[moving] = (integral_at_end[moving] - integral_at_start[moving]) / f0_grain[moving]
        # Phase continuity (pitch-synchronous placement): start each pitched grain where its own
        # measured phase matches a global running phase (C for transposed grains, f0_grain * t
        # otherwise), so overlapping grains add in phase instead of cancelling and jumping in phase at
        # every crossfade (a jump of a cycle over a hop reads as a pitch error of hop^-1 Hz).
        pitched = f0_grain > 0
        phase_ref = np.where(moving, integral_at_start, f0_grain * out_start)
        period = sr / np.maximum(f0_grain, 1e-6)
        cycles = np.mod(phase_ref / sr - grain_phase[sl], 1.0)
        s0 = np.where(pitched, s0 + cycles * period, s0)
        first_ok, last_ok = read_first[sl], read_end[sl] - 1.0
        overrun = np.maximum(0.0, s0 + span - last_ok)
        room = np.maximum(0.0, s0 - first_ok)
        back = np.where(
            pitched,
            np.minimum(np.ceil(overrun / period), np.floor(room / period)) * period,
            np.minimum(overrun, room),
        )
        s0 = s0 - back
        # Where the note is still too short (a short note read far up), the read loops over its last
        # whole periods, as a sampler's sustain loop: no jump in phase, and never into the next note.
        note_len = np.maximum(last_ok - first_ok, 1.0)
        loop = np.where(pitched, np.floor(note_len / period) * period, note_len)
        loop = np.where(loop >= 1.0, loop, note_len)  # a note shorter than its period loops whole

        grains = np.empty((n_channels, m, length), np.float32)
        plain = np.nonzero(~moving)[0]
        if plain.size:
            # Untransposed: whole-sample reads (the phase shift is rounded, < half a sample).
            idx = np.minimum(np.round(s0[plain]).astype(np.int64), n_style)[:, None] + np.arange(length)
            wrap = np.nonzero(pitched[plain] & (idx[:, -1] > last_ok[plain]))[0]
            if wrap.size:
                loop_p = np.round(loop[plain][wrap]).astype(np.int64)[:, None]
                over = np.maximum(idx[wrap] - last_ok[plain][wrap, None].astype(np.int64), 0)
                idx[wrap] -= -(-over // loop_p) * loop_p
            idx += offset[plain].astype(np.int64)[:, None]
            for ch in range(n_channels):
                grains[ch, plain] = bank[ch, idx]
        rows = np.nonzero(moving)[0]
        if rows.size:
            lo = int(out_start[rows].min())
            hi = int(out_start[rows].max()) + length
            integral_span = np.interp(np.arange(lo, hi, dtype=np.float64), frame_pos, f0_integral)
            integral_win = np.lib.stride_tricks.sliding_window_view(integral_span, length)
            # In place, one (rows, length) float64 buffer: the same arithmetic as
            # (C(t) - C(a)) / f0_grain + s0 [- loops] + bank offset, with fewer passes over memory.
            pos = integral_win[out_start[rows] - lo]
            pos -= integral_at_start[rows, None]
            pos /= f0_grain[rows, None]
            pos += s0[rows, None]
            # Reads only move forward: a row's last position is its furthest.
            wrap = np.nonzero(pos[:, -1] > last_ok[rows])[0]
            if wrap.size:
                loop_r = loop[rows][wrap, None]
                over = np.maximum(pos[wrap] - last_ok[rows][wrap, None], 0.0)
                pos[wrap] -= np.ceil(over / loop_r) * loop_r
            pos += offset[rows, None]
            i0 = pos.astype(np.int64)
            pos -= i0
            frac = pos.astype(np.float32)
            all_rows = rows.size == m
            for ch in range(n_channels):
                # Linear interpolation lo + (hi - lo) * frac, written straight into the grains. Reads
                # stay inside the bank by construction (each version is padded past its end), so the
                # takes skip numpy's bounds check ("raise" would also buffer the output).
                bank_ch = bank[ch]
                lo_v = grains[ch] if all_rows else np.empty((rows.size, length), np.float32)
                np.take(bank_ch, i0, out=lo_v, mode="clip")
                hi_v = np.take(bank_ch[1:], i0, mode="clip")
                hi_v -= lo_v
                hi_v *= frac
                lo_v += hi_v
                if not all_rows:
                    grains[ch, rows] = lo_v
        grains *= window
        grains *= gains[sl, None].astype(np.float32)
        for r in range(m):
            a = int(out_start[r])
            if a >= 0:
                out[:, a : a + length] += grains[:, r]
            elif a + length > 0:
                out[:, : a + length] += grains[:, r, -a:]
    return out[:, :n]


def _style_channels(style_samples: np.ndarray, stem_channels: int) -> np.ndarray:
    """The style as (n, channels) float32: kept as it is when it is mono, when it has the stem's
    channel count, or when the stem is mono; otherwise (e.g. a 5.1 style on a stereo stem) mono."""
    style = np.asarray(style_samples, np.float32)
    if style.ndim == 1:
        return style[:, None]
    if style.ndim != 2:
        raise ValueError(f"expected (n,) or (n, channels) style audio, got shape {style.shape}")
    if style.shape[1] == 1 or style.shape[1] == stem_channels or stem_channels == 1:
        return style
    return to_mono(style)[:, None]


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
    """Re-render a stem from a style sound's grains.

    Parameters
    ----------
    stem_samples : np.ndarray
        The stem, (n,) or (n, channels) float at `sample_rate`.
    sample_rate : int
        The stem's sample rate in Hz (the output's too).
    analysis : StemAnalysis
        The stem's analysis (onsets, f0, levels, silence).
    style_samples : np.ndarray
        The style sound, (m,) or (m, channels) float at `style_sr`.
    style_sr : int
        The style sound's sample rate in Hz.
    grain_table : GrainTable
        The style sound's grains and descriptors.
    grain_ms : float
        Grain length in milliseconds (GRAIN_MS_MIN..GRAIN_MS_MAX).
    use_pitch_mapping : bool
        Transpose tonal grains to follow the stem's f0 (keeping the style's spectral envelope).
    use_envelope : bool
        Impose the stem's loudness envelope on the output.
    mode : {"auto", "percussive", "tonal"}
        Rendering mode; "auto" takes the analysis' decision.
    seed : int
        Seed of the grain choice among near-equal candidates.

    Returns
    -------
    np.ndarray
        float32 audio of the stem's length. A stereo style on a stereo (or mono) stem gives stereo
        output carrying the style's image; otherwise the stem's shape. The output's true peak is at
        most STEM_CEILING_DBTP (no clipped sample). The same inputs and seed give the same output.
    """
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
    style = _style_channels(style_samples, x2.shape[1])
    if style.shape[0] == 0:
        raise ValueError("empty style sound")
    if style_sr != sample_rate:
        style = np.stack([resample(style[:, c], style_sr, sample_rate) for c in range(style.shape[1])], 1)
    scale = sample_rate / grain_table.sample_rate
    starts = np.clip(np.round(grain_table.starts * scale).astype(np.int64), 0, style.shape[0] - 1)
    length = max(2, round(grain_ms * 1e-3 * sample_rate))
    rng = np.random.default_rng(seed)
    kind = analysis.kind if mode == "auto" else mode

    if kind == "percussive":
        out = _render_percussive(mono, sample_rate, analysis, style, starts, grain_table, length, rng)
    else:
        # A chord stem is rendered as one grain voice per note (a single-f0 track of a chord is a
        # virtual pitch an octave or more below it); a single line as one voice, from its analysis. Drums
        # forced to tonal stay one voice: their noise reads as many "notes" (80-100 % of frames).
        voices = (
            chord_voices(mono, sample_rate, silence_db=analysis.silence_db)
            if analysis.kind == "tonal"
            else None
        )
        parts = (voice_analyses(analysis, voices) if voices is not None else []) or [analysis]

        # What depends only on the style and the settings is prepared once for all voices.
        prep = _TonalStyle(
            style, sample_rate, starts, grain_table, length, use_pitch_mapping=use_pitch_mapping
        )

        def voice(part: StemAnalysis) -> np.ndarray:
            return _render_tonal(
                mono,
                sample_rate,
                part,
                prep,
                rng,
                use_pitch_mapping=use_pitch_mapping,
                use_envelope=use_envelope,
            )

        out = voice(parts[0])
        for part in parts[1:]:
            out += voice(part)
    # Percussive grains already carry each hit's level (a drum replacer's velocity): the envelope may
    # only lower them, never lift a transient's surroundings; only the pan envelope and the gate apply.
    res = _shape_output(
        out, x2, mono, sample_rate, use_envelope, analysis.silence_db, keep_level=kind == "percussive"
    )
    # Overlapping hits and grains can sum past full scale: a stem is written and mixed clean.
    res = limit_true_peak(res, sample_rate, STEM_CEILING_DBTP)
    return res[:, 0] if x.ndim == 1 and res.shape[1] == 1 else res
