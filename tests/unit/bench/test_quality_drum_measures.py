"""The bench's drum measures on known answers: the hit-by-hit timbre distance to a kit tells a beat played
on the kit from a beat played on another kit (where the whole-stem mean MFCC follows the beat's mix of
drums), and the one-shots heard at each hit are named."""

from __future__ import annotations

import numpy as np

from audiomixer_tools import signals as S
from audiomixer_tools.bench import quality_measures as Q

SR = 44100
NAMES = ("kick", "snare", "hat")
GAP_S = 0.6


def kit_recording(kit: int) -> np.ndarray:
    """Kick, snare and hat one-shots of a synthetic kit, GAP_S apart, from 0.1 s."""
    x = np.zeros(round((0.1 + GAP_S * len(NAMES)) * SR), np.float32)
    for i, name in enumerate(NAMES):
        hit = S.drum_hit(name, SR, kit=kit, velocity=0.9)  # type: ignore[arg-type]
        s = round((0.1 + GAP_S * i) * SR)
        x[s : s + hit.size] += hit
    return x


def beat(kit: int, pattern: str, step_s: float = 0.15) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """A beat on a synthetic kit: k kick, s snare, h hat per step. Returns samples, hit times, names.
    Each hit is cut at the next (as the engine chokes), so a hit's first 90 ms are its own."""
    names = {"k": "kick", "s": "snare", "h": "hat"}
    x = np.zeros(round((0.2 + step_s * len(pattern) + 0.5) * SR), np.float32)
    times, played = [], []
    for i, c in enumerate(pattern):
        t = 0.2 + i * step_s
        hit = S.drum_hit(names[c], SR, kit=kit, velocity=0.8)  # type: ignore[arg-type]
        hit = hit[: round(step_s * SR)]
        s = round(t * SR)
        x[s : s + hit.size] += hit
        times.append(t)
        played.append(names[c])
    return x, np.asarray(times), played


HAT_HEAVY = "khhhshhhkhhhshhh"


def test_a_beat_on_the_kit_is_closer_hit_by_hit_than_a_beat_on_another_kit() -> None:
    kit = kit_recording(kit=1)
    same, times, _ = beat(1, HAT_HEAVY)
    other, _, _ = beat(0, HAT_HEAVY)
    # The whole-stem mean cannot tell: the hat-heavy beat on the kit itself is further from the mean of
    # its one-shot sequence than the other kit's beat.
    assert Q.mfcc_distance(same, kit, SR) > Q.mfcc_distance(other, kit, SR)
    d_same = Q.drum_hit_mfcc_distance(same, kit, times, SR)
    d_other = Q.drum_hit_mfcc_distance(other, kit, times, SR)
    # Played on the kit itself, every hit is (nearly) its one-shot; on another kit it is not.
    assert d_same < 5.0, d_same
    assert d_other > 4 * d_same + 10.0, (d_same, d_other)
    # Each kit's own one-shots are the nearest: the measure is symmetric in which kit is the style.
    kit0 = kit_recording(kit=0)
    assert Q.drum_hit_mfcc_distance(other, kit0, times, SR) < Q.drum_hit_mfcc_distance(same, kit0, times, SR)


def test_the_whole_stem_mean_follows_the_beats_mix_of_drums() -> None:
    # Why the drums are judged hit by hit: the same kit played hat-heavy is far from the mean of its
    # kick-snare-hat one-shot sequence, while the hit-by-hit distance stays ~0.
    kit = kit_recording(kit=1)
    hats, times, _ = beat(1, "hhhhhhhhhhhhhhhk")
    assert Q.mfcc_distance(hats, kit, SR) > 10.0
    assert Q.drum_hit_mfcc_distance(hats, kit, times, SR) < 5.0


def test_one_shots_are_found_in_a_kit_recording() -> None:
    kit = kit_recording(kit=1)
    starts = Q.one_shot_starts(kit, SR) / SR
    np.testing.assert_allclose(starts, 0.1 + GAP_S * np.arange(3), atol=0.003)
    # A one-shot right at the start of the recording is found too.
    assert Q.one_shot_starts(kit[round(0.1 * SR) :], SR)[0] <= 0.002 * SR


def test_the_one_shot_heard_at_each_hit_is_named() -> None:
    kit = kit_recording(kit=1)
    starts = Q.one_shot_starts(kit, SR)
    shots = [kit[a:b] for a, b in zip(starts, np.append(starts[1:], kit.size), strict=True)]
    x, times, played = beat(1, "kshhsskh")
    # Played 4 ms after the truth onset, as a replacer placing the one-shot on a refined transient.
    x = np.concatenate([np.zeros(round(0.004 * SR), np.float32), x])
    heard = Q.drum_classes_heard(x, SR, times, shots, list(NAMES))
    assert heard == [{name} for name in played]
    # A kick with the hat layered on it at the same level holds both; another kit's hits match less.
    both = np.zeros(SR, np.float32)
    for name in ("kick", "hat"):
        hit = S.drum_hit(name, SR, kit=1, velocity=0.8)  # type: ignore[arg-type]
        both[round(0.2 * SR) : round(0.2 * SR) + hit.size] += hit
    assert Q.drum_classes_heard(both, SR, np.array([0.2]), shots, list(NAMES)) == [{"kick", "hat"}]
