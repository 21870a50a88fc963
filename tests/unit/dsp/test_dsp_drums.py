"""Drums on known signals: the percussive/tonal decision (slapped bass, toms, chords, kits), onsets of
busy drums, and the percussive engine (each hit replaced at its transient, at its level, never clipped)."""

from __future__ import annotations

import librosa
import numpy as np
import pytest

from audiomixer.dsp.analysis import StemAnalysis, analyse_stem, classify
from audiomixer.dsp.grains import analyse_style_sound
from audiomixer.dsp.granular import render_stem
from audiomixer_tools import signals as S
from audiomixer_tools.metrics import onset_f1

SR = 44100


def slapped_bass(duration_s: float, seed: int = 0) -> np.ndarray:
    """Plucked/slapped bass, E1..A2, sixteenths at 104 bpm with rests: each note a harmonic tone that
    decays (like a drum hit) under a 3 ms noise slap."""
    rng = np.random.default_rng(seed)
    out = np.zeros(round(duration_s * SR))
    step = 60.0 / 104 / 4
    t = 0.05
    while t < duration_s - 0.5:
        if rng.random() < 0.6:
            f0 = float(S.midi_to_hz(int(rng.choice([28, 31, 33, 36, 38, 40, 43, 45]))))
            dur = step * int(rng.choice([1, 2, 3]))
            n = round(dur * SR)
            tt = np.arange(n) / SR
            note = S.harmonic_tone(np.full(n, f0), SR, n_harmonics=8) * np.exp(-7.0 * tt)
            note[-int(0.01 * SR) :] *= np.linspace(1, 0, int(0.01 * SR))
            click = int(0.003 * SR)
            note[:click] += 0.8 * rng.standard_normal(click) * np.linspace(1, 0, click)
            s = round(t * SR)
            out[s : s + n] += float(rng.uniform(0.5, 1.0)) * note
            t += dur
        else:
            t += step
    return (0.5 * out / np.abs(out).max()).astype(np.float32)


def toms(duration_s: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Tuned drums only (three toms in fills): inharmonic membrane modes whose pitch drops 8 % as the
    hit decays. Returns the samples and the hit times."""
    rng = np.random.default_rng(seed)
    modes = np.array([1.0, 1.59, 2.14, 2.30, 2.65, 2.92])
    out = np.zeros(round(duration_s * SR))
    times = []
    t = 0.1
    while t < duration_s - 0.6:
        f0 = float(rng.choice([82.0, 110.0, 147.0]))
        n = int(0.5 * SR)
        tt = np.arange(n) / SR
        f = f0 * (1.0 - 0.08 * (1.0 - np.exp(-8.0 * tt)))
        phase = 2 * np.pi * np.cumsum(f) / SR
        hit = sum(np.sin(m * phase) * np.exp(-tt * (9.0 + 6.0 * k)) / (k + 1) for k, m in enumerate(modes))
        s = round(t * SR)
        out[s : s + n] += float(rng.uniform(0.4, 1.0)) * hit
        times.append(t)
        t += float(rng.choice([0.15, 0.3, 0.45]))
    return (0.5 * out / np.abs(out).max()).astype(np.float32), np.asarray(times)


def busy_drums(duration_s: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Drum-and-bass sixteenths at 172 bpm (87 ms apart): loud kicks and snares, quiet hats and ghost
    snares in between, with a 1.5 s break of silence in the middle. Returns samples, hit times and each
    hit's peak level."""
    rng = np.random.default_rng(seed)
    out = np.zeros(round(duration_s * SR))
    step = 60.0 / 172 / 4
    times = []
    levels = []
    k = 0
    t = 0.05
    while t < duration_s - 0.4:
        if not 4.0 <= t < 5.5:
            pos = k % 16
            name = "kick" if pos in (0, 10) else "snare" if pos in (4, 12) else "hat"
            vel = 1.0 if name != "hat" else float(rng.uniform(0.15, 0.5))
            if name == "hat" and rng.random() < 0.2:
                name, vel = "snare", 0.2  # ghost note
            hit = S.drum_hit(name, SR, kit=0, velocity=vel, seed=k)  # type: ignore[arg-type]
            s = round(t * SR)
            out[s : s + hit.size] += hit[: out.size - s]
            times.append(t)
            levels.append(vel)
        k += 1
        t += step
    scale = 0.8 / np.abs(out).max()
    return (scale * out).astype(np.float32), np.asarray(times), scale * np.asarray(levels)


def nearest(times: np.ndarray, values: np.ndarray, at: np.ndarray) -> np.ndarray:
    return values[np.abs(times[None, :] - at[:, None]).argmin(axis=1)]


@pytest.fixture(scope="module")
def busy() -> tuple[np.ndarray, np.ndarray, np.ndarray, StemAnalysis]:
    x, times, levels = busy_drums(10.0, seed=5)
    return x, times, levels, analyse_stem(x, SR)


def test_classify_known_answers() -> None:
    assert classify(-9.0, 0.06, 0.75) == "percussive"  # a kit: decays, noisy, unpitched
    assert classify(-10.0, 0.35, 0.35) == "percussive"  # a kit with sine kicks: pitched yet noisy
    assert classify(-7.0, 0.10, 0.0) == "percussive"  # toms: decays, inharmonic, no noise
    assert classify(-7.0, 0.30, 0.01) == "tonal"  # slapped bass: decays like a drum but pitched
    assert classify(-0.9, 0.0, 0.0) == "tonal"  # chords: no single pitch, but sustained
    assert classify(-1.0, 0.05, 0.5) == "tonal"  # a sustained noisy pad is still not drums


def test_slapped_bass_with_rests_is_tonal() -> None:
    a = analyse_stem(slapped_bass(12.0, seed=1), SR)
    # It decays between notes as drums do; only its pitch tells it apart.
    assert a.sustain_db < -3.0
    assert a.kind == "tonal", a.extra


def test_toms_only_hits_are_found() -> None:
    # Tuned drums with no noise, some 150 ms after a louder one.
    x, times = toms(12.0, seed=2)
    a = analyse_stem(x, SR)
    assert onset_f1(times, a.onset_times_s) >= 0.9


def test_sustained_chords_are_tonal() -> None:
    a = analyse_stem(S.pad_chords(12.0, SR, seed=3), SR)
    assert a.kind == "tonal", (a.sustain_db, a.extra)


def test_kits_are_percussive() -> None:
    for kit in (0, 1):
        x, _ = S.drum_pattern(12.0, SR, kit=kit, seed=4)
        assert analyse_stem(x, SR).kind == "percussive"
    assert analyse_style_sound(S.style_kit(SR, kit=1), SR).kind == "percussive"


def test_busy_drums_every_hit_found_with_its_strength(busy: tuple) -> None:
    x, times, levels, a = busy
    assert a.kind == "percussive"
    # +-50 ms (the bench's window) and to within 5 ms of the hit (the refined transient).
    assert onset_f1(times, a.onset_times_s) >= 0.92
    assert onset_f1(times, a.onset_times_s, window_s=0.005) >= 0.9
    # At least as good as librosa's default detector on the same stem.
    lib = librosa.onset.onset_detect(y=x, sr=SR, units="time")
    assert onset_f1(times, a.onset_times_s) >= onset_f1(times, lib)
    # Strengths and peaks per onset; each hit's peak is its own level, a quiet hat over a kick's tail
    # included.
    assert a.onset_strengths.shape == a.onset_peaks.shape == a.onset_times_s.shape
    true_level = nearest(times, levels, a.onset_times_s)
    assert np.corrcoef(np.log(true_level), np.log(a.onset_peaks))[0, 1] > 0.9


def test_rendered_busy_drums_keep_every_hit_at_its_level_and_never_clip(busy: tuple) -> None:
    x, times, levels, a = busy
    kit = S.style_kit(SR, kit=1)
    out = render_stem(x, SR, a, kit, SR, analyse_style_sound(kit, SR))
    assert np.isfinite(out).all()
    # Never louder than the stem: grains are scaled to the hit's peak and cut at the next hit.
    assert np.abs(out).max() <= np.abs(x).max() + 1e-6
    # Every hit is heard where it was (librosa's default detector, as the quality bench measures, beside
    # its score on the stem itself: it misses some of the quietest hats there too, 0.92), and the
    # transient sits on the stem's (analysed again, within 5 ms). Each hat now takes the kit's hat, whose
    # ring hides a quiet hat after another from the detector a little more than the stem's short hats do.
    lib = librosa.onset.onset_detect(y=out, sr=SR, units="time")
    lib_on_stem = librosa.onset.onset_detect(y=x, sr=SR, units="time")
    assert onset_f1(times, lib) >= min(0.9, onset_f1(times, lib_on_stem) - 0.04)
    again = analyse_stem(out, SR)
    assert onset_f1(times, again.onset_times_s, window_s=0.005) >= 0.9
    # No grain where there was no hit: the break stays silent.
    assert np.abs(out[int(4.1 * SR) : int(5.45 * SR)]).max() == 0.0
    # Each detected hit at its level (loud kicks, quiet hats): grains are cut at the next hit, so the
    # rendered peak after a hit is that hit's grain's.
    found = np.abs(times[:, None] - a.onset_times_s[None, :]).min(axis=1) < 0.01
    assert found.mean() > 0.85
    win = int(0.05 * SR)
    ren = np.array([np.abs(out[int(t * SR) : int(t * SR) + win]).max() for t in times[found]])
    assert np.corrcoef(np.log(levels[found]), np.log(ren))[0, 1] > 0.8


def test_a_quiet_hit_after_a_loud_one_chokes_its_grain() -> None:
    # A loud kick and, 87 ms later, a quiet hat: the kick's grain stops at the hat, whose grain alone
    # sounds after it, at the hat's level (the stem's kick tail is not the hat's velocity).
    x = np.zeros(SR, np.float32)
    kick = S.drum_hit("kick", SR, velocity=0.9)
    hat = S.drum_hit("hat", SR, velocity=0.1, seed=1)
    k0, h0 = int(0.1 * SR), int(0.187 * SR)
    x[k0 : k0 + kick.size] += kick
    x[h0 : h0 + hat.size] += hat
    a = analyse_stem(x, SR)
    assert onset_f1(np.array([0.1, 0.187]), a.onset_times_s, window_s=0.005) == 1.0
    kit = S.style_kit(SR, kit=1)
    out = render_stem(x, SR, a, kit, SR, analyse_style_sound(kit, SR), mode="percussive")
    after_hat = np.abs(out[h0 + int(0.005 * SR) : h0 + int(0.05 * SR)]).max()
    assert after_hat <= 1.2 * a.onset_peaks[1], (after_hat, a.onset_peaks)
    assert np.abs(out[k0 : k0 + int(0.05 * SR)]).max() > 0.6
