"""The percussive engine keeps each drum's role: a stem's kick, snare and hi-hat each take the style
kit's one-shot of the same kind (as a drum replacer does), whatever the two kits' recordings, and a kick
struck with a hi-hat takes the kick, the drum that dominates its attack."""

from __future__ import annotations

import numpy as np
import pytest

from audiomixer.dsp.analysis import analyse_stem
from audiomixer.dsp.drum_hits import describe_hits, drum_distances
from audiomixer.dsp.grains import analyse_style_sound
from audiomixer.dsp.granular import render_stem
from audiomixer_tools import signals as S

SR = 44100
NAMES = ("kick", "snare", "hat")
STEP_S = 60.0 / 100 / 4  # sixteenths at 100 bpm
# One bar: kick on 1 and 3 (with an accented hat on 1 peaking above that kick, whose energy still leads
# the attack), snare on 2 and 4, hats on the off-beats.
BAR = ("kick+hat", "", "hat", "", "snare", "", "hat", "", "kick", "", "hat", "", "snare", "", "hat", "")
BAR_LEVELS = {"kick": 0.9, "snare": 0.8, "hat": 0.35}
COMBO_LEVELS = {"kick": 0.7, "hat": 0.9}


def beat(bars: int) -> tuple[np.ndarray, list[tuple[float, tuple[str, ...]]]]:
    """A beat on kit 0 of the synthetic drums; returns the samples and (time, drums) per hit."""
    x = np.zeros(round((bars * 16 * STEP_S + 0.6) * SR), np.float32)
    hits = []
    t = 0.1
    for i in range(bars * 16):
        names = tuple(n for n in BAR[i % 16].split("+") if n)
        for k, name in enumerate(names):
            level = COMBO_LEVELS[name] if len(names) > 1 else BAR_LEVELS[name]
            h = S.drum_hit(name, SR, kit=0, velocity=level, seed=i * 3 + k)  # type: ignore[arg-type]
            s = round(t * SR)
            x[s : s + h.size] += h[: x.size - s]
        if names:
            hits.append((t, names))
        t += STEP_S
    return x, hits


def kit_one_shots() -> dict[str, np.ndarray]:
    """A style kit of three distinct one-shots (kit 1: lower kick with a click, ringing metallic snare,
    square-wave cymbal hat), each at one velocity."""
    return {name: S.drum_hit(name, SR, kit=1, velocity=0.9) for name in NAMES}  # type: ignore[arg-type]


def kit_recording(shots: dict[str, np.ndarray]) -> np.ndarray:
    gap = round(0.6 * SR)
    parts = []
    for name in NAMES:
        seg = np.zeros(gap, np.float32)
        seg[: shots[name].size] = shots[name][:gap]
        parts.append(seg)
    return np.concatenate(parts)


def heard(out: np.ndarray, t: float, shots: dict[str, np.ndarray]) -> dict[str, float]:
    """Normalised correlation of the rendered hit at t (first 20 ms, +-2 ms) with each one-shot."""
    m = round(0.02 * SR)
    s = round(t * SR)
    window = out[s - round(0.002 * SR) : s + round(0.002 * SR) + m].astype(np.float64)
    scores = {}
    for name, shot in shots.items():
        tpl = shot[:m].astype(np.float64)
        c = np.correlate(window, tpl, mode="valid")
        energy = np.sqrt(np.convolve(window**2, np.ones(m), mode="valid")) * np.linalg.norm(tpl)
        scores[name] = float(np.max(c / np.maximum(energy, 1e-12)))
    return scores


@pytest.fixture(scope="module")
def rendered() -> tuple[np.ndarray, list[tuple[float, tuple[str, ...]]], dict[str, np.ndarray]]:
    x, hits = beat(4)
    shots = kit_one_shots()
    kit = kit_recording(shots)
    a = analyse_stem(x, SR)
    out = render_stem(x, SR, a, kit, SR, analyse_style_sound(kit, SR), mode="percussive")
    return out, hits, shots


def test_each_hit_takes_the_one_shot_of_its_kind(rendered: tuple) -> None:
    out, hits, shots = rendered
    singles = [(t, names[0]) for t, names in hits if len(names) == 1]
    picked = [max(heard(out, t, shots).items(), key=lambda kv: kv[1])[0] for t, _ in singles]
    wrong = [(round(t, 3), want, got) for (t, want), got in zip(singles, picked, strict=True) if got != want]
    assert not wrong, wrong


def test_a_kick_struck_with_a_hat_takes_the_kick(rendered: tuple) -> None:
    out, hits, shots = rendered
    kicks = [(t, names) for t, names in hits if "kick" in names]
    assert any(len(names) == 2 for _, names in kicks)
    for t, names in kicks:
        scores = heard(out, t, shots)
        assert max(scores, key=scores.__getitem__) == "kick", (t, names, scores)


def test_descriptors_name_the_drum_across_kits() -> None:
    # Each kit-0 drum is nearest to the kit-1 one-shot of its kind, at any velocity.
    shots = kit_one_shots()
    kit = kit_recording(shots)
    starts = np.arange(3) * round(0.6 * SR)
    shot_desc = describe_hits(kit, SR, starts, np.append(starts[1:], kit.size))
    for velocity in (0.2, 1.0):
        gap = round(0.6 * SR)
        x = np.concatenate(
            [np.pad(S.drum_hit(n, SR, kit=0, velocity=velocity), (0, gap))[:gap] for n in NAMES]  # type: ignore[arg-type]
        )
        hit_desc = describe_hits(x, SR, starts, np.append(starts[1:], x.size))
        assert drum_distances(hit_desc, shot_desc).argmin(axis=1).tolist() == [0, 1, 2]
