"""A development corpus of real-sounding music for the quality benchmark: multi-instrument songs composed
here as MIDI, each stem rendered on its own with the `fluidsynth` CLI and a sampled General MIDI
soundfont, with ground truth taken from the MIDI, and "recorded" style sounds rendered from a different
soundfont.

    from audiomixer_tools.bench.corpus import build_corpus
    corpus = build_corpus(".cache/quality-corpus")
    for song in corpus.songs:
        stems = song.load_stems()            # {"drums", "bass", "other", "vocals"}: (n, 2) float32, 44.1 kHz
        song.truth.drum_onsets_s             # one time per drum hit (simultaneous hits merged)
        song.truth.bass_times_s, song.truth.bass_f0_hz   # mir_eval melody format: 0 Hz = unvoiced
        song.truth.lead_f0_hz                # the lead's f0 on the same grid
    corpus.style_sounds["kit"].load()

Each song directory is also a valid `audiomixer remix --stems DIR` input (the lead stands in for vocals).
The cache lives under a key made of this module's source, the song length and the soundfonts, so a change
to any song definition rebuilds the corpus.

Needs the Debian packages `fluidsynth`, `fluid-soundfont-gm` (the songs) and `timgm6mb-soundfont` (the
style sounds).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "SAMPLE_RATE",
    "SONG_SOUNDFONT",
    "STYLE_SOUNDFONT",
    "Corpus",
    "CorpusUnavailable",
    "Note",
    "Song",
    "SongSpec",
    "StyleSound",
    "Truth",
    "build_corpus",
    "compose",
    "drum_onset_truth",
    "f0_truth",
    "missing_tools",
    "render_midi",
    "write_midi",
]

SAMPLE_RATE = 44100
SONG_SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
STYLE_SOUNDFONT = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")
DEFAULT_DIR = Path(".cache/quality-corpus")
TICKS_PER_BEAT = 480
STEPS_PER_BAR = 16  # sixteenth notes
DRUM_CHANNEL = 9
TRUTH_HOP_S = 0.01  # mir_eval's melody grid
AUDIBLE_DB = -50.0  # a bass note counts as sounding only above this frame RMS (dBFS)
ONSET_MERGE_S = 0.03  # drum hits closer than this are one onset
MIX_PEAK = 0.8  # the stems of a song are scaled together so their sum peaks here
STEM_FILES = {"drums": "drums", "bass": "bass", "other": "other", "lead": "vocals"}


class CorpusUnavailable(RuntimeError):
    """fluidsynth or a soundfont is missing: say which Debian package provides it."""


@dataclass(frozen=True)
class Note:
    """One MIDI note, in seconds."""

    pitch: int
    start_s: float
    end_s: float
    velocity: int


@dataclass(frozen=True)
class Part:
    """One stem's notes and the General MIDI program that plays them (a drum kit on the drum channel)."""

    program: int
    notes: tuple[Note, ...]
    drums: bool = False


# Drum patterns: one 16-step string per GM drum note; X accent, x hit, o soft, g ghost note, . rest.
_VELOCITY = {"X": 122, "x": 100, "o": 72, "g": 34}
KICK, SNARE, STICK, CLOSED_HAT, PEDAL_HAT, OPEN_HAT, CRASH, RIDE = 36, 38, 37, 42, 44, 46, 49, 51
HIGH_TOM, MID_TOM, LOW_TOM, FLOOR_TOM = 50, 47, 45, 43

FILL = {
    SNARE: "X.x.xgxg........",
    HIGH_TOM: "........xx......",
    MID_TOM: "..........xx....",
    FLOOR_TOM: "............xxxX",
    KICK: "x.......x.......",
}


@dataclass(frozen=True)
class SongSpec:
    """A song as code: a chord progression (one chord per bar, cycled), and per stem a program and a
    one-bar pattern. Bass steps are (step, length_steps, semitones above the bar's root, velocity)."""

    name: str
    tempo_bpm: float
    roots: tuple[int, ...]  # MIDI note of each bar's bass root (28 = E1, 41.2 Hz)
    minor: tuple[bool, ...]
    drum_kit: int
    drums: dict[int, str]
    bass_program: int
    bass: tuple[tuple[int, int, int, int], ...]
    other_program: int
    other_rhythm: str  # x starts the chord, - holds it, . rest
    lead_program: int
    lead_rhythm: str
    fill_every: int = 4
    swing: float = 0.0  # share of a step that off-beat sixteenths are delayed
    description: str = ""


# fmt: off
SONGS: tuple[SongSpec, ...] = (
    SongSpec(
        "funk_slap",
        104,
        roots=(28, 28, 33, 31),
        minor=(True, True, False, False),
        drum_kit=0,
        drums={
            KICK: "x..x..x...x..x..",
            SNARE: "....X..g.g..X..g",
            CLOSED_HAT: "XoxoXoxoXoxo.oxo",
            OPEN_HAT: "............x...",
        },
        bass_program=36,  # slap bass 1
        bass=((0, 2, 0, 122), (3, 1, 12, 105), (4, 1, 0, 90), (6, 1, 12, 112), (7, 1, 10, 90),
              (10, 2, 0, 118), (12, 1, 7, 100), (14, 1, 12, 110), (15, 1, 10, 85)),
        other_program=7,  # clavinet
        other_rhythm="..x..x.....x.x..",
        lead_program=65,  # alto sax
        lead_rhythm="x-.x-.x---..x-x.",
        description="slap bass with rests down to E1, 16th hats with ghost snares, clavinet stabs",
    ),
    SongSpec(
        "rock_picked",
        132,
        roots=(28, 36, 31, 38),
        minor=(True, False, False, False),
        drum_kit=16,  # power kit
        drums={KICK: "x.....x.x.......", SNARE: "....X.......X...", CLOSED_HAT: "x.x.x.x.x.x.x.x."},
        bass_program=34,  # picked bass
        bass=((0, 1, 0, 115), (2, 1, 0, 100), (4, 1, 0, 108), (6, 1, 0, 100), (8, 1, 0, 115), (10, 1, 0, 100),
              (12, 1, 7, 108), (14, 1, 5, 100)),
        other_program=29,  # overdriven guitar
        other_rhythm="x-----x-x-------",
        lead_program=53,  # voice oohs
        lead_rhythm="x---x-x-x---....",
        description="picked staccato eighths with rests from E1, power-kit rock with tom fills",
    ),
    SongSpec(
        "ballad_finger",
        72,
        roots=(28, 36, 29, 31),
        minor=(True, False, False, False),
        drum_kit=0,
        drums={KICK: "x.......x.x.....", STICK: "....x.......x...", CLOSED_HAT: "xoxoxoxoxoxoxoxo"},
        bass_program=33,  # finger bass
        bass=((0, 6, 0, 100), (6, 2, 7, 85), (8, 6, 0, 95), (14, 2, 12, 85)),
        other_program=0,  # grand piano
        other_rhythm="x-------x-------",
        lead_program=73,  # flute
        lead_rhythm="x-----x-x-------",
        description="slow finger bass with long low notes (E1, F1), 16th hats, piano",
    ),
    SongSpec(
        "synthpop_octaves",
        118,
        roots=(33, 29, 36, 31),
        minor=(True, False, False, False),
        drum_kit=25,  # TR-808
        drums={KICK: "x...x...x...x...", SNARE: "....x.......x...", CLOSED_HAT: "xxxxxxxxxxxxxxxx",
               OPEN_HAT: "..x...x...x...x."},
        bass_program=38,  # synth bass 1
        bass=tuple((2 * i, 1, 12 if i % 2 else 0, 105) for i in range(8)),
        other_program=89,  # warm pad
        other_rhythm="x---------------",
        lead_program=80,  # square lead
        lead_rhythm="x-x-x---x-x-x---",
        description="synth bass octave eighths from F1, four-on-the-floor 808 kit, pad",
    ),
    SongSpec(
        "dnb_fast",
        172,
        roots=(38, 34, 29, 36),
        minor=(True, False, False, False),
        drum_kit=24,  # electronic kit
        drums={KICK: "x.........x.....", SNARE: "....X..g.g..X..g", CLOSED_HAT: "xoxxxoxxxoxxxoxx",
               RIDE: "x...x...x...x..."},
        bass_program=39,  # synth bass 2
        bass=((0, 3, 0, 115), (3, 1, 0, 90), (4, 1, 3, 95), (5, 1, 5, 95), (6, 2, 7, 105), (10, 1, 0, 100),
              (11, 1, 12, 95), (12, 2, 10, 100), (14, 1, 7, 95), (15, 1, 5, 90)),
        other_program=48,  # strings
        other_rhythm="x-------x-------",
        lead_program=81,  # saw lead
        lead_rhythm="x.x.xx..x.x.x...",
        description="fast sixteenth synth-bass line at 172 BPM, breakbeat with ghost notes",
    ),
    SongSpec(
        "reggae_low",
        78,
        roots=(33, 38, 28, 33),
        minor=(True, True, False, True),
        drum_kit=0,
        drums={KICK: "........x.......", STICK: "........x.......", CLOSED_HAT: "x.x.x.x.x.x.x.x.",
               RIDE: "....x.......x..."},
        bass_program=32,  # acoustic bass
        bass=((2, 2, 0, 112), (5, 1, 0, 90), (6, 2, 7, 100), (10, 3, 5, 100), (14, 1, 3, 90)),
        other_program=16,  # drawbar organ
        other_rhythm="....x.......x...",
        lead_program=54,  # synth voice
        lead_rhythm="x---..x-x---x-..",
        fill_every=8,
        description="acoustic bass with rests down to E1, one-drop drums, organ skank",
    ),
    SongSpec(
        "disco_slap",
        124,
        roots=(31, 36, 38, 28),
        minor=(False, False, False, True),
        drum_kit=0,
        drums={KICK: "x...x...x...x...", SNARE: "....x.......x...", CLOSED_HAT: "x.x.x.x.x.x.x.x.",
               OPEN_HAT: "..x...x...x...x."},
        # Slap bass 1 again: FluidR3's slap bass 2 sounds 50-180 cents sharp of its MIDI pitch.
        bass_program=36,  # slap bass 1
        bass=((0, 1, 0, 115), (1, 1, 12, 95), (4, 1, 0, 110), (5, 1, 12, 95), (8, 1, 0, 115), (9, 1, 12, 95),
              (12, 1, 7, 110), (13, 1, 10, 95)),
        other_program=27,  # clean guitar
        other_rhythm="x.x.x.x.x.x.x.x.",
        lead_program=61,  # brass section
        lead_rhythm="x-..x-..x-x-x---",
        description="slap bass octave jumps with rests, disco hats, strummed guitar sixteenths",
    ),
    SongSpec(
        "shuffle_walk",
        96,
        roots=(28, 33, 35, 28),
        minor=(False, False, False, False),
        drum_kit=32,  # jazz kit
        drums={KICK: "x.......x.......", SNARE: "....x..g....x..g", RIDE: "x..xx..xx..xx..x",
               PEDAL_HAT: "....x.......x..."},
        bass_program=32,  # acoustic bass
        bass=((0, 4, 0, 105), (4, 4, 4, 95), (8, 4, 7, 100), (12, 4, 9, 95)),
        other_program=4,  # electric piano
        other_rhythm="x--.....x--.....",
        lead_program=56,  # trumpet
        lead_rhythm="x--x--x-....x-x-",
        swing=0.33,
        description="legato walking bass from E1 (note changes without rests), swung jazz kit",
    ),
    SongSpec(
        "metal_chug",
        150,
        roots=(28, 28, 29, 31),
        minor=(True, True, True, True),
        drum_kit=16,  # power kit
        drums={KICK: "xxxxx.xxxxxx.xxx", SNARE: "....X.......X...", CRASH: "x.......x......."},
        bass_program=34,  # picked bass
        bass=((0, 1, 0, 120), (1, 1, 0, 100), (2, 1, 0, 105), (4, 1, 0, 115), (5, 1, 0, 100), (6, 1, 0, 100),
              (8, 1, 1, 115), (9, 1, 0, 100), (12, 2, 3, 110), (14, 2, 5, 105)),
        other_program=30,  # distortion guitar
        other_rhythm="x-x-x.x-x-x.x-x-",
        lead_program=62,  # synth brass
        lead_rhythm="x-------x---x---",
        description="fast picked sixteenth chugs on E1 with rests, double-kick",
    ),
)
# fmt: on


@dataclass(frozen=True)
class StyleSpec:
    """A "recorded" style sound: notes played by one program of the style soundfont (a different one from
    the songs'), with its reverb and chorus on, as a room and a stereo image."""

    name: str
    program: int
    notes: tuple[tuple[int, float, float, int], ...]  # (pitch, start_s, duration_s, velocity)
    drums: bool = False
    description: str = ""


STYLES: tuple[StyleSpec, ...] = (
    StyleSpec(
        "kit",
        0,
        tuple(
            (p, 0.45 * i, 0.4, 118 if p in (KICK, SNARE) else 100)
            for i, p in enumerate((KICK, SNARE, CLOSED_HAT, OPEN_HAT, KICK, SNARE, HIGH_TOM, LOW_TOM, CRASH))
        ),
        drums=True,
        description="a drum-kit one-shot set: kick, snare, hats, toms, crash",
    ),
    StyleSpec(
        "synth_bass",
        38,
        tuple((p, 0.7 * i, 0.6, 110) for i, p in enumerate((40, 45, 38, 43, 40, 47))),
        description="a bright synth bass, notes D2..B2",
    ),
    StyleSpec(
        "bright_lead",
        81,
        tuple((p, 0.5 * i, 0.45, 105) for i, p in enumerate((60, 64, 67, 72, 76, 79, 72, 67))),
        description="a bright sawtooth lead, C4..G5",
    ),
)


@dataclass(frozen=True)
class Truth:
    """Ground truth of one song from its MIDI: drum onsets, and the f0 of the bass and of the lead on one
    time grid (0 Hz where not exactly one of the part's notes sounds or its rendered stem is below
    AUDIBLE_DB)."""

    drum_onsets_s: np.ndarray
    bass_times_s: np.ndarray  # the grid of bass_f0_hz and lead_f0_hz
    bass_f0_hz: np.ndarray
    bass_notes: tuple[Note, ...] = ()
    lead_f0_hz: np.ndarray = field(default_factory=lambda: np.zeros(0))
    lead_notes: tuple[Note, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "drum_onsets_s": [round(float(t), 6) for t in self.drum_onsets_s],
            "bass_times_s": [round(float(t), 6) for t in self.bass_times_s],
            "bass_f0_hz": [round(float(f), 4) for f in self.bass_f0_hz],
            "bass_notes": [[n.pitch, n.start_s, n.end_s, n.velocity] for n in self.bass_notes],
            "lead_f0_hz": [round(float(f), 4) for f in self.lead_f0_hz],
            "lead_notes": [[n.pitch, n.start_s, n.end_s, n.velocity] for n in self.lead_notes],
        }

    @classmethod
    def from_dict(cls, d: dict[str, list[Any]]) -> Truth:
        return cls(
            np.asarray(d["drum_onsets_s"], np.float64),
            np.asarray(d["bass_times_s"], np.float64),
            np.asarray(d["bass_f0_hz"], np.float64),
            tuple(Note(int(p), float(s), float(e), int(v)) for p, s, e, v in d["bass_notes"]),
            np.asarray(d["lead_f0_hz"], np.float64),
            tuple(Note(int(p), float(s), float(e), int(v)) for p, s, e, v in d["lead_notes"]),
        )


@dataclass(frozen=True)
class Song:
    """One rendered song: its stems as WAV files in `path` (drums, bass, other, vocals = the lead)."""

    name: str
    path: Path
    tempo_bpm: float
    duration_s: float
    truth: Truth
    description: str = ""
    sample_rate: int = SAMPLE_RATE

    def stem_path(self, stem: str) -> Path:
        return self.path / f"{stem}.wav"

    def load_stems(self) -> dict[str, np.ndarray]:
        """All stems as (n_samples, 2) float32 arrays at `sample_rate`, keyed drums/bass/other/vocals."""
        import soundfile as sf

        return {
            stem: sf.read(str(self.stem_path(stem)), dtype="float32", always_2d=True)[0]
            for stem in STEM_FILES.values()
        }


@dataclass(frozen=True)
class StyleSound:
    name: str
    path: Path
    description: str = ""

    def load(self) -> tuple[np.ndarray, int]:
        """(samples (n, 2) float32, sample rate)."""
        import soundfile as sf

        data, sr = sf.read(str(self.path), dtype="float32", always_2d=True)
        return data, int(sr)


@dataclass(frozen=True)
class Corpus:
    path: Path
    songs: list[Song]
    style_sounds: dict[str, StyleSound] = field(default_factory=dict)


# --- composing -------------------------------------------------------------------------------------------


def _rng(name: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(name.encode()))


def _step_s(spec: SongSpec, step: float) -> float:
    """Time of a (possibly fractional) sixteenth step, with swing on the off-beat sixteenths."""
    whole = int(np.floor(step))
    swung = step + (spec.swing if whole % 2 == 1 else 0.0)
    return swung * 60.0 / spec.tempo_bpm / 4.0


def _n_bars(spec: SongSpec, seconds: float) -> int:
    return int(np.ceil(seconds * spec.tempo_bpm / 60.0 / 4.0))


def _drum_notes(spec: SongSpec, seconds: float) -> list[Note]:
    rng = _rng(spec.name + "/drums")
    notes: list[Note] = []
    for bar in range(_n_bars(spec, seconds)):
        fill = spec.fill_every > 0 and bar % spec.fill_every == spec.fill_every - 1
        pattern = dict(spec.drums)
        if fill:  # keep the hats/ride going on the first half, then the fill
            pattern = {k: v[:8] + "." * 8 for k, v in spec.drums.items() if k not in (KICK, SNARE)} | FILL
        if bar % spec.fill_every == 0:
            pattern = pattern | {CRASH: "x" + pattern.get(CRASH, "." * 16)[1:]}
        for pitch, row in pattern.items():
            for step, ch in enumerate(row):
                if ch == ".":
                    continue
                vel = int(np.clip(_VELOCITY[ch] + rng.integers(-6, 7), 20, 127))
                start = _step_s(spec, bar * STEPS_PER_BAR + step)
                notes.append(Note(pitch, start, start + 0.1, vel))
    return notes


def _bass_notes(spec: SongSpec, seconds: float) -> list[Note]:
    notes = []
    for bar in range(_n_bars(spec, seconds)):
        root = spec.roots[bar % len(spec.roots)]
        for step, length, interval, vel in spec.bass:
            s = bar * STEPS_PER_BAR + step
            # Notes end a little before their step is over: picked/slapped lines breathe.
            notes.append(Note(root + interval, _step_s(spec, s), _step_s(spec, s + length - 0.15), vel))
    return notes


def _rhythm(spec: SongSpec, bar: int, rhythm: str) -> list[tuple[int, int]]:
    """(start step, length in steps) of each note a rhythm string starts in a bar."""
    out = []
    for step, ch in enumerate(rhythm):
        if ch != "x":
            continue
        length = 1
        while step + length < len(rhythm) and rhythm[step + length] == "-":
            length += 1
        out.append((bar * STEPS_PER_BAR + step, length))
    return out


def _chord(root: int, minor: bool) -> tuple[int, ...]:
    base = root + 36 if root + 36 >= 60 else root + 48  # around middle C
    return (base, base + (3 if minor else 4), base + 7, base + 12)


def _other_notes(spec: SongSpec, seconds: float) -> list[Note]:
    notes = []
    for bar in range(_n_bars(spec, seconds)):
        i = bar % len(spec.roots)
        for start, length in _rhythm(spec, bar, spec.other_rhythm):
            for pitch in _chord(spec.roots[i], spec.minor[i]):
                notes.append(Note(pitch, _step_s(spec, start), _step_s(spec, start + length - 0.1), 88))
    return notes


def _lead_notes(spec: SongSpec, seconds: float) -> list[Note]:
    """A melody on the chord's pentatonic scale; every fourth bar rests, as a singer breathes."""
    rng = _rng(spec.name + "/lead")
    notes = []
    for bar in range(_n_bars(spec, seconds)):
        if bar % 4 == 3:
            continue
        i = bar % len(spec.roots)
        scale = (0, 3, 5, 7, 10) if spec.minor[i] else (0, 2, 4, 7, 9)
        base = _chord(spec.roots[i], spec.minor[i])[0]  # a singer's range: C3..A#5
        for start, length in _rhythm(spec, bar, spec.lead_rhythm):
            pitch = base + int(rng.choice(scale)) - (12 if rng.random() < 0.15 else 0)
            notes.append(Note(pitch, _step_s(spec, start), _step_s(spec, start + length - 0.2), 96))
    return notes


def compose(spec: SongSpec, seconds: float) -> dict[str, Part]:
    """The song's four parts (drums, bass, other, lead), cut to `seconds`."""

    def cut(notes: list[Note]) -> tuple[Note, ...]:
        return tuple(
            Note(n.pitch, n.start_s, min(n.end_s, seconds - 0.05), n.velocity)
            for n in notes
            if n.start_s < seconds - 0.1
        )

    return {
        "drums": Part(spec.drum_kit, cut(_drum_notes(spec, seconds)), drums=True),
        "bass": Part(spec.bass_program, cut(_bass_notes(spec, seconds))),
        "other": Part(spec.other_program, cut(_other_notes(spec, seconds))),
        "lead": Part(spec.lead_program, cut(_lead_notes(spec, seconds))),
    }


# --- MIDI and fluidsynth ---------------------------------------------------------------------------------


def write_midi(part: Part, path: Path, tempo_bpm: float = 120.0) -> None:
    """One-track MIDI file of a part. Times are converted at `tempo_bpm` (any tempo gives the same
    seconds; the song's own keeps the file readable in a sequencer)."""
    import mido

    channel = DRUM_CHANNEL if part.drums else 0
    ticks_per_s = TICKS_PER_BEAT * tempo_bpm / 60.0
    events: list[tuple[int, int, mido.Message]] = []  # (tick, order, message): note-offs first
    for n in part.notes:
        on, off = round(n.start_s * ticks_per_s), round(n.end_s * ticks_per_s)
        events.append((on, 1, mido.Message("note_on", channel=channel, note=n.pitch, velocity=n.velocity)))
        events.append((max(off, on + 1), 0, mido.Message("note_off", channel=channel, note=n.pitch)))
    events.sort(key=lambda e: (e[0], e[1]))
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo_bpm), time=0))
    track.append(mido.Message("program_change", channel=channel, program=part.program, time=0))
    now = 0
    for tick, _, msg in events:
        track.append(msg.copy(time=tick - now))
        now = tick
    midi = mido.MidiFile(ticks_per_beat=TICKS_PER_BEAT)
    midi.tracks.append(track)
    midi.save(str(path))


def missing_tools() -> str | None:
    """Why the corpus cannot be built here (the Debian package to install), or None."""
    if shutil.which("fluidsynth") is None:
        return "the fluidsynth CLI is not installed (Debian package fluidsynth)"
    if not SONG_SOUNDFONT.is_file():
        return f"{SONG_SOUNDFONT} is missing (Debian package fluid-soundfont-gm)"
    if not STYLE_SOUNDFONT.is_file():
        return f"{STYLE_SOUNDFONT} is missing (Debian package timgm6mb-soundfont)"
    return None


def render_midi(midi_path: Path, soundfont: Path, *, effects: bool = False) -> np.ndarray:
    """Render a MIDI file with the fluidsynth CLI: (n, 2) float32 at SAMPLE_RATE. Reverb and chorus stay
    off unless `effects` (the truth of a dry stem is easier to trust)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.wav"
        cmd = ["fluidsynth", "-ni", "-q", "-r", str(SAMPLE_RATE), "-g", "0.5", "-O", "float", "-T", "wav"]
        cmd += [] if effects else ["-R", "0", "-C", "0"]
        cmd += ["-F", str(out), str(soundfont), str(midi_path)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
        if proc.returncode != 0 or not out.is_file():
            raise CorpusUnavailable(f"fluidsynth failed on {midi_path.name}: {proc.stderr.strip()[-500:]}")
        import soundfile as sf

        data, sr = sf.read(str(out), dtype="float32", always_2d=True)
    if sr != SAMPLE_RATE:
        raise CorpusUnavailable(f"fluidsynth wrote {sr} Hz, not {SAMPLE_RATE}")
    return data


def _fit(x: np.ndarray, n: int) -> np.ndarray:
    if x.shape[0] >= n:
        return x[:n]
    return np.concatenate([x, np.zeros((n - x.shape[0], x.shape[1]), x.dtype)])


# --- ground truth ----------------------------------------------------------------------------------------


def drum_onset_truth(notes: Sequence[Note], merge_s: float = ONSET_MERGE_S) -> np.ndarray:
    """Drum onset times (s): one per hit, hits closer than merge_s (a kick under a hat) merged."""
    times = np.unique(np.round([n.start_s for n in notes], 6))
    if times.size == 0:
        return times
    keep = [times[0]]
    for t in times[1:]:
        if t - keep[-1] >= merge_s:
            keep.append(t)
    return np.asarray(keep, np.float64)


def frame_level_db(
    x: np.ndarray, sample_rate: int, times_s: np.ndarray, frame_s: float = 0.046
) -> np.ndarray:
    """RMS level (dBFS) of the mono downmix on frames of frame_s centred at times_s."""
    y = x.mean(axis=1) if x.ndim == 2 else x
    half = max(1, round(frame_s * sample_rate / 2))
    csum = np.concatenate([[0.0], np.cumsum(y.astype(np.float64) ** 2)])
    centre = np.round(times_s * sample_rate).astype(np.int64)
    lo = np.clip(centre - half, 0, y.size)
    hi = np.clip(centre + half, 0, y.size)
    power = (csum[hi] - csum[lo]) / np.maximum(hi - lo, 1)
    return 10.0 * np.log10(np.maximum(power, 1e-20))


def f0_truth(
    notes: Sequence[Note],
    duration_s: float,
    stem: np.ndarray | None = None,
    sample_rate: int = SAMPLE_RATE,
    hop_s: float = TRUTH_HOP_S,
    audible_db: float = AUDIBLE_DB,
) -> tuple[np.ndarray, np.ndarray]:
    """(times_s, f0_hz) on a hop_s grid: the note's equal-tempered f0 where exactly one note sounds (from
    its note-on to its note-off) and, when the rendered `stem` is given, its level is above audible_db;
    0 Hz elsewhere."""
    times = np.arange(0.0, duration_s, hop_s)
    count = np.zeros(times.size, np.int64)
    f0 = np.zeros(times.size, np.float64)
    for n in notes:
        inside = (times >= n.start_s) & (times < n.end_s)
        count += inside
        f0[inside] = 440.0 * 2.0 ** ((n.pitch - 69) / 12.0)
    f0[count != 1] = 0.0
    if stem is not None:
        f0[frame_level_db(stem, sample_rate, times) < audible_db] = 0.0
    return times, f0


# --- building and caching --------------------------------------------------------------------------------


def corpus_key(seconds: float) -> str:
    """Changes when this module (the songs, the truth), the song length or the soundfonts change."""
    h = hashlib.sha256(Path(__file__).read_bytes())
    h.update(f"{seconds:g}".encode())
    for sf2 in (SONG_SOUNDFONT, STYLE_SOUNDFONT):
        h.update(f"{sf2.name}:{sf2.stat().st_size if sf2.is_file() else 0}".encode())
    return h.hexdigest()[:12]


def _build_song(spec: SongSpec, directory: Path, seconds: float) -> None:
    import soundfile as sf

    directory.mkdir(parents=True, exist_ok=True)
    parts = compose(spec, seconds)
    n = round(seconds * SAMPLE_RATE)
    audio = {}
    for part_name, part in parts.items():
        midi = directory / f"{STEM_FILES[part_name]}.mid"
        write_midi(part, midi, spec.tempo_bpm)
        audio[part_name] = _fit(render_midi(midi, SONG_SOUNDFONT), n)
    # One gain for the whole song keeps the stems' balance, as a mixing engineer left it.
    peak = float(np.max(np.abs(np.sum(list(audio.values()), axis=0))))
    gain = MIX_PEAK / peak if peak > 0 else 1.0
    for part_name, data in audio.items():
        sf.write(str(directory / f"{STEM_FILES[part_name]}.wav"), data * gain, SAMPLE_RATE, subtype="FLOAT")
    times, bass_f0 = f0_truth(parts["bass"].notes, seconds, audio["bass"] * gain)
    _, lead_f0 = f0_truth(parts["lead"].notes, seconds, audio["lead"] * gain)
    truth = Truth(
        drum_onset_truth(parts["drums"].notes),
        times,
        bass_f0,
        parts["bass"].notes,
        lead_f0,
        parts["lead"].notes,
    )
    meta = {"name": spec.name, "tempo_bpm": spec.tempo_bpm, "duration_s": seconds,
            "description": spec.description, "truth": truth.to_dict()}  # fmt: skip
    (directory / "song.json").write_text(json.dumps(meta))


def _build_style(spec: StyleSpec, path: Path) -> None:
    import soundfile as sf

    notes = tuple(Note(p, s, s + d, v) for p, s, d, v in spec.notes)
    with tempfile.TemporaryDirectory() as tmp:
        midi = Path(tmp) / f"{spec.name}.mid"
        write_midi(Part(spec.program, notes, drums=spec.drums), midi)
        data = render_midi(midi, STYLE_SOUNDFONT, effects=True)
    end = max(n.end_s for n in notes) + 0.5
    data = data[: round(end * SAMPLE_RATE)]
    peak = float(np.max(np.abs(data)))
    sf.write(str(path), data * (0.9 / peak if peak > 0 else 1.0), SAMPLE_RATE, subtype="FLOAT")


def _load_song(directory: Path) -> Song:
    meta = json.loads((directory / "song.json").read_text())
    return Song(
        name=meta["name"],
        path=directory,
        tempo_bpm=float(meta["tempo_bpm"]),
        duration_s=float(meta["duration_s"]),
        truth=Truth.from_dict(meta["truth"]),
        description=meta.get("description", ""),
    )


def build_corpus(
    path: Path | str = DEFAULT_DIR,
    *,
    seconds: float = 30.0,
    songs: int | None = None,
    names: Sequence[str] | None = None,
    rebuild: bool = False,
    log: bool = False,
) -> Corpus:
    """Build (or reuse from the cache under `path`) the corpus: every song of SONGS (the first `songs`
    of them, or those called `names`, when given) rendered to `seconds`, and the STYLES' style sounds.

    Raises CorpusUnavailable when fluidsynth or a soundfont is missing.
    """
    why = missing_tools()
    if why:
        raise CorpusUnavailable(why)
    root = Path(path) / corpus_key(seconds)
    if rebuild and root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    specs = SONGS if names is None else tuple(s for s in SONGS if s.name in set(names))
    if names is not None and len(specs) != len(set(names)):
        raise ValueError(f"unknown songs in {list(names)}; the corpus has {[s.name for s in SONGS]}")
    specs = specs if songs is None else specs[:songs]
    out: list[Song] = []
    for spec in specs:
        directory = root / spec.name
        if not (directory / "song.json").is_file():
            if log:
                print(f"  corpus: rendering {spec.name} ({seconds:g} s) with fluidsynth", flush=True)
            _build_song(spec, tmp := Path(tempfile.mkdtemp(dir=root, prefix=f".{spec.name}.")), seconds)
            # A half-built song is never taken for a cached one, and two processes building the same
            # corpus at once each build in their own folder; the first rename wins.
            if not (directory / "song.json").is_file():
                shutil.rmtree(directory, ignore_errors=True)
                with contextlib.suppress(OSError):
                    tmp.rename(directory)
            shutil.rmtree(tmp, ignore_errors=True)
        out.append(_load_song(directory))
    styles_dir = root / "styles"
    styles_dir.mkdir(parents=True, exist_ok=True)
    styles: dict[str, StyleSound] = {}
    for style in STYLES:
        target = styles_dir / f"{style.name}.wav"
        if not target.is_file():
            tmp_path = styles_dir / f".{style.name}.{os.getpid()}.wav"
            _build_style(style, tmp_path)
            tmp_path.replace(target)
        styles[style.name] = StyleSound(style.name, target, style.description)
    return Corpus(root, out, styles)
