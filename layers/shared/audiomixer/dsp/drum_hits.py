"""Which drum a hit is: descriptors that name the drum (kick, snare, hi-hat, tom, cymbal) rather than the
kit's recording, for stem hits and a kit's one-shots alike, so a drum replacer can give each hit the
one-shot of its kind.

Each hit is described by what its attack *adds* (the power spectrum of the ATTACK_S after the transient
minus that of the ATTACK_S before it, so the tail of the previous hit is not read as this one): the share
of that energy in five bands (kick, body, snare/tom crack, presence, cymbal), the attack's spectral
flatness (noise vs tone) and, where the next hit leaves room, how much of it still rings from ATTACK_S to
DECAY_S (a closed hat stops, an open hat or a crash rings on). Shares are in decades with a floor at
SHARE_FLOOR: a band holding under 1 % of a hit's energy does not say which drum it is (the beater click
of a kick, a boomy kit's low snare), while the bands that do carry it decide. Kicks are told first, as
a role of their own (see kick_roles): the lowest, most low-heavy drums of their kit or stem take only
the kit's kicks, and no other drum does.

A cymbal struck with another drum (a crash on a kick, a ride on a snare) is told apart by its sustain,
not by its brightness: the top band (above CYMBAL_FROM_HZ) of a crash or ride holds its power from the
attack into the ring (ATTACK_S to DECAY_S, or to the next hit), while a hat's and a snare's die within
it; and the hit must bring that top-band energy itself (CYMBAL_JUMP_MIN_DB over the ATTACK_S before it),
so a kick in the tail of an earlier crash is not one (see cymbal_rings).

A kick struck with another drum (a snare on the backbeat, a hat, a crash) loses the kick role, the other
drum's bands outweighing its share, but is still told by the kick itself (see kick_sounds): the attack
holds the stem's own kick (the median added spectrum of its kick-role hits) at every one of its main
bins below 150 Hz, and the kick band dies over the ring no slower than the stem's kicks do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import butter, sosfilt

DRUM_BAND_EDGES_HZ = (150.0, 400.0, 1200.0, 4000.0)  # band starts above the first (kick) band
# Below this a window of ATTACK_S holds no drum's pitch, only DC and the leakage of a decaying tail (a
# quiet hat 87 ms after a sweeping kick "adds" 20 Hz power where the kick's pitch fell): not counted.
KICK_BAND_FROM_HZ = 30.0
ATTACK_S = 0.03
DECAY_S = 0.1
SHARE_FLOOR = 0.01
FLATNESS_BAND_HZ = (100.0, 12000.0)
# Weights of the descriptors: the kick band counts half, as it is where recordings of one drum differ
# most (room boom, a close mic's proximity, a low cut); noise and ring tell snare from tom, and hats apart.
KICK_BAND_WEIGHT = 0.5
FLATNESS_WEIGHT = 0.3
DECAY_WEIGHT = 1.0
# Kicks are matched to kicks first (a role rule, as a drum replacer's kick trigger): in the band-share
# distance a boomy snare (the corpus kit's: 54 % of its attack below 150 Hz, 37 % at 150-400 Hz, 5 % of
# cymbal band) came out nearer a kick struck with a hat (88 % below 150 Hz, the hat's 5 % of cymbal band
# and its noise) than the kit's own pure kick (98 %), whose other bands all sit at the floor. A kick is
# the lowest, most low-heavy drum of its own kit or stem (kits and recordings differ in how pure and how
# low their kick is): at least KICK_SHARE_MIN of its attack in the kick band and KICK_SHARE_OF_TOP of the
# largest share there among the side's hits, and the centroid of its attack below LOW_CENTROID_TOP_HZ
# within KICK_CENTROID_SPREAD of the lowest such hits' (their KICK_CENTROID_PERCENTILE): a floor tom
# holds as much of its attack below 150 Hz as a kick (75-80 % on the corpus) but rings 30-60 % higher
# than the same kit's kick (centroids 107-143 Hz against 69-119 Hz, song by song always above).
KICK_SHARE_MIN = 0.6
KICK_SHARE_OF_TOP = 0.8
LOW_CENTROID_TOP_HZ = 400.0
KICK_CENTROID_PERCENTILE = 10.0
KICK_CENTROID_SPREAD = 1.25
ROLE_MISMATCH = 1e3  # added between a kick and a non-kick: larger than any descriptor distance
# A cymbal rings: its top band keeps within CYMBAL_RING_MIN_DB of the attack's power over the ring (to
# DECAY_S, or to the next hit when it leaves at least RING_MIN_S), and the hit brings that band's energy
# itself. Measured on the quality corpus' 1614 hits (234 holding a MIDI cymbal): these two rules flag 56,
# every one with a cymbal, and so does any pair of thresholds in -2..-1 dB and 3..6 dB (53-56 hits);
# without the jump rule 68 more pass, none with a cymbal (40 of them the metal song's sixteenth kicks
# under a crash still ringing from an earlier hit). Neither the attack's brightness nor its top band's
# excess over the chosen one-shot told anything (a rule on them flagged hits holding a cymbal at 9-16 %,
# their share of all hits). Rides losing their ping within 100 ms (-6 dB, as hats do) and open hats
# choked within a sixteenth are left to the one-shot match.
CYMBAL_FROM_HZ = DRUM_BAND_EDGES_HZ[-1]
CYMBAL_RING_MIN_DB = -2.0
CYMBAL_JUMP_MIN_DB = 3.0  # the hit at least doubles the top band's power of the ATTACK_S before it
RING_MIN_S = 0.01
TINY = 1e-20  # power floor of the dB ratios (linear mean square)
# A kick sounds in a hit holding the stem's kick whole: at each bin of KICK_BAND_FROM_HZ..150 Hz where
# the stem's kick template (the median added power of its kick-role hits) is within KICK_MAIN_DB of its
# peak, the hit adds at least KICK_PRESENT_MIN_DB of the template's power, and its kick band keeps over
# the ring (ATTACK_S to DECAY_S) no more than KICK_RING_SLACK_DB above the stem's kicks' median ring.
# Measured on the quality corpus (1212 hits outside the kick role, 132 of them at a MIDI kick, most
# struck with a snare): these flag 114, every one at a MIDI kick (none of the 1080 others), and so does
# any threshold in -10..-3 dB with a slack of 0.5..1 dB (109-115 hits, none without a kick). The
# template's whole shape is what tells, not the energy below 150 Hz: 111 hits bringing that within 6 dB
# of the kicks' but holding no kick fall 6-66 dB short at one of the kick's bins (the drum'n'bass song's
# electronic snare 12-48 dB, toms pitched above the kick). The General MIDI standard kit's floor tom
# holds its kick's whole attack (29 hits, -6..+1.3 dB at the weakest bin) but rings on (1.8-10 dB over
# the kicks' ring): the ring rule leaves it out, and with it 8 kicks struck with a tom in a fill (1.7-2.7
# dB over). Left to the match: those, and 5 of the metal song's sixteenth-run kicks (8-61 dB short).
KICK_MAIN_DB = 10.0
KICK_PRESENT_MIN_DB = -6.0
KICK_RING_SLACK_DB = 1.0


@dataclass(frozen=True)
class DrumHits:
    """Descriptors of hits in one signal.

    band_energy : (hits, bands) power the attack adds per band (mean square per sample, linear)
    is_kick : (hits,) whether the hit is a kick (see kick_roles)
    descriptors : (hits, bands + 2) band shares (decades), weighted log flatness, weighted decay
    decay_known : (hits,) whether the next hit leaves DECAY_S to measure the decay
    top_attack_power : (hits,) mean square of the signal above CYMBAL_FROM_HZ over the attack (linear)
    top_ring_db : (hits,) power of that band over the ring against the attack's, in dB (-inf where the
        next hit leaves under RING_MIN_S of ring)
    cymbal_rings : (hits,) whether a cymbal rings in the hit (see cymbal_rings)
    low_ring_db : (hits,) power below DRUM_BAND_EDGES_HZ[0] over the ring against the attack's, in dB (NaN
        where the next hit leaves under RING_MIN_S of ring)
    kick_sounds : (hits,) whether a kick sounds in the hit, in the kick role or struck with another drum
        (see kick_sounds)
    """

    band_energy: np.ndarray
    is_kick: np.ndarray
    descriptors: np.ndarray
    decay_known: np.ndarray
    top_attack_power: np.ndarray
    top_ring_db: np.ndarray
    cymbal_rings: np.ndarray
    low_ring_db: np.ndarray
    kick_sounds: np.ndarray

    @property
    def n_hits(self) -> int:
        return int(self.decay_known.size)

    def rows(self, which: slice) -> DrumHits:
        """The descriptors of some of the hits."""
        return DrumHits(
            band_energy=self.band_energy[which],
            is_kick=self.is_kick[which],
            descriptors=self.descriptors[which],
            decay_known=self.decay_known[which],
            top_attack_power=self.top_attack_power[which],
            top_ring_db=self.top_ring_db[which],
            cymbal_rings=self.cymbal_rings[which],
            low_ring_db=self.low_ring_db[which],
            kick_sounds=self.kick_sounds[which],
        )


def _added_band_energy(
    after: np.ndarray, before: np.ndarray, n_fft: int, sample_rate: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(added power spectrum, frequencies, band energies) of windows `after` over windows `before`."""
    n = after.shape[1]
    window = np.hanning(n)
    p_after = np.abs(np.fft.rfft(after * window, n_fft, axis=1)) ** 2 / n
    p_before = np.abs(np.fft.rfft(before * window, n_fft, axis=1)) ** 2 / n
    added = np.maximum(p_after - p_before, 1e-3 * p_after)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    band_of = np.searchsorted(np.asarray(DRUM_BAND_EDGES_HZ), freqs, side="right")
    band_of[freqs < KICK_BAND_FROM_HZ] = -1
    bands = np.stack([added[:, band_of == k].sum(axis=1) for k in range(len(DRUM_BAND_EDGES_HZ) + 1)], 1)
    return added, freqs, bands


def _windows(x: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
    """(len(starts), length) slices of `x` from each start, zero outside the signal."""
    idx = starts.astype(np.int64)[:, None] + np.arange(length)[None, :]
    inside = (idx >= 0) & (idx < x.size)
    return np.where(inside, x[np.clip(idx, 0, max(0, x.size - 1))], 0.0).astype(np.float64)


def kick_roles(kick_band_share: np.ndarray, low_centroid_hz: np.ndarray) -> np.ndarray:
    """Which hits of one signal (a stem, or a kit's one-shots) are kicks.

    Parameters
    ----------
    kick_band_share : np.ndarray
        (hits,) share of each attack's added energy in the kick band (0..1).
    low_centroid_hz : np.ndarray
        (hits,) centroid of each attack's added power below LOW_CENTROID_TOP_HZ, in Hz.

    Returns
    -------
    np.ndarray
        (hits,) bool: at least KICK_SHARE_MIN, and KICK_SHARE_OF_TOP of the signal's largest share, in
        the kick band, with a low centroid within KICK_CENTROID_SPREAD of those hits' lowest.
    """
    share = np.asarray(kick_band_share, np.float64)
    top = float(np.max(share, initial=0.0))
    low_heavy = share >= max(KICK_SHARE_MIN, KICK_SHARE_OF_TOP * top)
    if not low_heavy.any():
        return low_heavy
    centroid = np.asarray(low_centroid_hz, np.float64)
    lowest = float(np.percentile(centroid[low_heavy], KICK_CENTROID_PERCENTILE))
    return np.asarray(low_heavy & (centroid <= KICK_CENTROID_SPREAD * lowest), bool)


def cymbal_rings(top_ring_db: np.ndarray, top_jump_db: np.ndarray) -> np.ndarray:
    """Which hits hold a ringing cymbal (a crash, a ride), whatever else is struck with it.

    Parameters
    ----------
    top_ring_db : np.ndarray
        (hits,) power above CYMBAL_FROM_HZ over the ring against that over the attack, in dB.
    top_jump_db : np.ndarray
        (hits,) power above CYMBAL_FROM_HZ over the attack against that over the ATTACK_S before it, dB.

    Returns
    -------
    np.ndarray
        (hits,) bool: the top band keeps within CYMBAL_RING_MIN_DB of its attack over the ring and the
        hit brings at least CYMBAL_JUMP_MIN_DB of it (not the tail of an earlier cymbal).
    """
    ring = np.asarray(top_ring_db, np.float64)
    jump = np.asarray(top_jump_db, np.float64)
    return np.asarray((ring >= CYMBAL_RING_MIN_DB) & (jump >= CYMBAL_JUMP_MIN_DB), bool)


def kick_sounds(kick_band_power: np.ndarray, low_ring_db: np.ndarray, is_kick: np.ndarray) -> np.ndarray:
    """Which hits of one signal hold a kick, whatever else is struck with it.

    Parameters
    ----------
    kick_band_power : np.ndarray
        (hits, bins) power each attack adds at the bins of KICK_BAND_FROM_HZ..DRUM_BAND_EDGES_HZ[0].
    low_ring_db : np.ndarray
        (hits,) power below DRUM_BAND_EDGES_HZ[0] over the ring against that over the attack, in dB; NaN
        where it is not known.
    is_kick : np.ndarray
        (hits,) bool: the hits in the kick role (see kick_roles), whose median spectrum is the kick's.

    Returns
    -------
    np.ndarray
        (hits,) bool: the kick-role hits, and those adding at least KICK_PRESENT_MIN_DB of the kick's
        power at each of its bins within KICK_MAIN_DB of its peak, whose kick band dies over the ring
        no slower than KICK_RING_SLACK_DB above the kicks' median ring. None but the kick-role hits when
        no kick-role hit has a known ring.
    """
    power = np.asarray(kick_band_power, np.float64)
    ring = np.asarray(low_ring_db, np.float64)
    kick = np.asarray(is_kick, bool)
    out = kick.copy()
    kick_ring = ring[kick & np.isfinite(ring)]
    if kick_ring.size == 0 or power.shape[1] == 0:
        return out
    template = np.median(power[kick], axis=0)
    if not template.max() > 0.0:
        return out
    main = template >= 10.0 ** (-KICK_MAIN_DB / 10.0) * template.max()
    worst = (power[:, main] / template[main]).min(axis=1)
    ring_top = float(np.median(kick_ring)) + KICK_RING_SLACK_DB
    # NaN rings compare False: a hit whose ring is not known is no kick by this rule.
    holds = (worst >= 10.0 ** (KICK_PRESENT_MIN_DB / 10.0)) & (ring <= ring_top)
    return np.asarray(out | holds, bool)


def _band_power_sum(x: np.ndarray, sample_rate: int, edge_hz: float, btype: str) -> np.ndarray:
    """Running sum (leading 0) of the squares of `x` high- or low-passed at `edge_hz`: any span's band
    power from two lookups, with no per-hit filtering. All zeros where the sample rate leaves no such
    band (no top band at 8 kHz: no cymbal)."""
    out = np.zeros(x.size + 1)
    if x.size and edge_hz < 0.45 * sample_rate:
        sos = butter(4, edge_hz, btype=btype, fs=sample_rate, output="sos")
        out[1:] = np.cumsum(sosfilt(sos, x) ** 2)
    return out


def _ring_db(attack: np.ndarray, ring: np.ndarray, known: np.ndarray, unknown: float) -> np.ndarray:
    """A band's power over the ring against its attack's, in dB; `unknown` where the ring is too short
    to measure or the attack holds no power."""
    return np.where(
        known & (attack > TINY), 10.0 * np.log10((ring + TINY) / (attack + TINY)), unknown
    ).astype(np.float64)


def _mean_power(csum: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean square over samples [a, b) of the signal whose squares' running sum (leading 0) is csum."""
    a = np.clip(a, 0, csum.size - 1)
    b = np.clip(b, a, csum.size - 1)
    return np.asarray((csum[b] - csum[a]) / np.maximum(b - a, 1), np.float64)


def describe_hits(
    mono: np.ndarray, sample_rate: int, positions: np.ndarray, next_positions: np.ndarray
) -> DrumHits:
    """Describe the hits of a mono signal.

    Parameters
    ----------
    mono : np.ndarray
        The signal, (n,) float.
    sample_rate : int
        Its sample rate in Hz.
    positions : np.ndarray
        Each hit's transient, in samples.
    next_positions : np.ndarray
        Where the next hit starts (or the end of the sound), in samples: the attack and the decay are
        measured no further.

    Returns
    -------
    DrumHits
    """
    x = np.asarray(mono, np.float64)
    pos = np.asarray(positions, np.int64)
    nxt = np.maximum(np.asarray(next_positions, np.int64), pos + 1)
    n_attack = max(8, round(ATTACK_S * sample_rate))
    n_fft = 1 << (n_attack - 1).bit_length()
    after = _windows(x, pos, n_attack)
    # The attack stops at the next hit (a 16th-note hat after a kick is not the kick's).
    after *= np.arange(n_attack)[None, :] < (nxt - pos)[:, None]
    before = _windows(x, pos - n_attack, n_attack)
    added, freqs, band_energy = _added_band_energy(after, before, n_fft, sample_rate)
    shares = band_energy / np.maximum(band_energy.sum(axis=1, keepdims=True), 1e-30)
    log_shares = np.log10(np.maximum(shares, SHARE_FLOOR))
    log_shares[:, 0] *= KICK_BAND_WEIGHT
    low = (freqs >= KICK_BAND_FROM_HZ) & (freqs < LOW_CENTROID_TOP_HZ)
    low_centroid_hz = (added[:, low] * freqs[low]).sum(axis=1) / np.maximum(added[:, low].sum(axis=1), 1e-30)
    flat_band = (freqs >= FLATNESS_BAND_HZ[0]) & (freqs <= FLATNESS_BAND_HZ[1])
    p = added[:, flat_band] + 1e-20
    flatness = np.exp(np.log(p).mean(axis=1)) / p.mean(axis=1)
    n_decay = max(n_attack + 8, round(DECAY_S * sample_rate))
    decay_known = (nxt - pos) >= n_decay
    ring = _windows(x, pos + n_attack, n_decay - n_attack)
    attack_ms = (after**2).mean(axis=1) + 1e-12
    ring_ms = (ring**2).mean(axis=1) + 1e-12
    decay = np.where(decay_known, np.log10(ring_ms / attack_ms), 0.0)
    descriptors = np.column_stack([log_shares, FLATNESS_WEIGHT * np.log10(flatness), DECAY_WEIGHT * decay])
    # The top band's and the kick band's sustain, each from one filtering of the whole signal.
    attack_end = np.minimum(nxt, pos + n_attack)
    ring_end = np.minimum(nxt, pos + n_decay)
    ring_known = ring_end - (pos + n_attack) >= max(1, round(RING_MIN_S * sample_rate))
    top = _band_power_sum(x, sample_rate, CYMBAL_FROM_HZ, "high")
    top_attack = _mean_power(top, pos, attack_end)
    top_ring_db = _ring_db(top_attack, _mean_power(top, pos + n_attack, ring_end), ring_known, -np.inf)
    top_jump_db = 10.0 * np.log10((top_attack + TINY) / (_mean_power(top, pos - n_attack, pos) + TINY))
    low = _band_power_sum(x, sample_rate, DRUM_BAND_EDGES_HZ[0], "low")
    low_attack = _mean_power(low, pos, attack_end)
    low_ring_db = _ring_db(low_attack, _mean_power(low, pos + n_attack, ring_end), ring_known, np.nan)
    kick_bins = (freqs >= KICK_BAND_FROM_HZ) & (freqs < DRUM_BAND_EDGES_HZ[0])
    is_kick = kick_roles(shares[:, 0], low_centroid_hz)
    return DrumHits(
        band_energy=band_energy,
        is_kick=is_kick,
        descriptors=descriptors,
        decay_known=decay_known,
        top_attack_power=top_attack,
        top_ring_db=top_ring_db,
        cymbal_rings=cymbal_rings(top_ring_db, top_jump_db),
        low_ring_db=low_ring_db,
        kick_sounds=kick_sounds(added[:, kick_bins], low_ring_db, is_kick),
    )


def drum_distances(hits: DrumHits, shots: DrumHits) -> np.ndarray:
    """(hits, shots) squared distances between descriptors; the decay counts only where both the hit
    and the one-shot leave room to measure it, and a kick is ROLE_MISMATCH away from a non-kick (a kit
    without a kick, or a stem without one, leaves the descriptors to decide). One (hits, shots) array
    at a time, never a third axis."""
    out = np.zeros((hits.n_hits, shots.n_hits))
    last = hits.descriptors.shape[1] - 1
    for k in range(last + 1):
        sq = (hits.descriptors[:, k, None] - shots.descriptors[None, :, k]) ** 2
        if k == last:
            sq *= hits.decay_known[:, None] & shots.decay_known[None, :]
        out += sq
    out += ROLE_MISMATCH * (hits.is_kick[:, None] != shots.is_kick[None, :])
    return out
