"""Chunked, restartable, memory-flat Demucs separation.

How chunks are cut. Demucs' own `apply_model(split=True)` already cuts a song into segments (7.8 s for
htdemucs_ft) on a fixed stride (75 % of a segment) and overlap-adds them with triangular weights. Cutting
the song into independent 30 s chunks with 1 s of context, each split again by Demucs, costs 15-20 % more
model time (every chunk adds a partly-empty segment and the context is computed twice) and puts seams
where Demucs never would. So a chunk here is a run of consecutive segments *on the song's global segment
grid*: chunk boundaries fall on Demucs' own segment overlaps (1.95 s of cross-faded context for
htdemucs_ft; the overlap fraction is raised when `overlap_s` asks for more, up to 75 % of a segment),
the model runs on exactly the segments a one-go
`apply_model` would run, and the result equals the one-go result up to 24-bit rounding. Checkpoints,
restart and flat memory come on top at no extra model cost.

What a chunk stores. Chunk k contributes sum_j w_j * y_j / W over its segments j, where W is the global
sum of segment weights; adjacent chunks' contributions overlap by one segment overlap and simply add. A
contribution is quantised to 24-bit integers before it is checkpointed *and* before it is used, so a
resumed run assembles bit-for-bit the same stems as an uninterrupted one.

Stems sum to the input. All stems but one come from the model; the residual stem (`other`, or
`no_vocals` in two-stem mode: see audiomixer.stem_sets) is input minus the model stems, computed in
24-bit integers after they are quantised, so the PCM_24 FLACs add up to the (24-bit) input exactly. With
a 4-source model: drums, bass and vocals from the model, `other` the residual. Full scale: FLAC is
integer PCM, so model stems are clipped to full scale (counted in `clipped_samples`; Demucs stems of a
normalised, non-clipping input rarely exceed it). Where the residual itself would then fall outside full
scale, the excess is moved into the model stems' headroom (always possible because the input is within
full scale), keeping the sum exact; those samples are counted in `residual_fixups`.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
from demucs.apply import TensorChunk
from demucs.apply import apply_model as apply_model  # re-exported: bench separate times it
from demucs.htdemucs import HTDemucs

from audiomixer.separation.checkpoints import CheckpointStore, Stems
from audiomixer.separation.model import (
    DemucsModel,
    SeparationError,
    model_attr,
    model_segment_s,
    sub_models,
)
from audiomixer.stem_sets import StemSet, stem_set

logger = logging.getLogger(__name__)

FULL_SCALE = 1 << 23  # 24-bit PCM
PCM_MIN, PCM_MAX = -FULL_SCALE, FULL_SCALE - 1
DEMUCS_OVERLAP = 0.25  # demucs.apply.apply_model's default overlap between segments
MANIFEST_VERSION = 1
_SEEKABLE_FORMATS = {"WAV", "WAVEX", "FLAC", "AIFF", "W64", "RF64", "CAF"}
_READ_BLOCK = 1 << 20  # frames per block when streaming through a file
MIN_SEGMENT_FRAMES = 4096

ProgressCallback = Callable[[int, str], None]


@dataclass
class SeparationResult:
    paths: dict[str, Path]
    frames: int
    samplerate: int
    chunks: int
    computed_chunks: int = 0
    resumed_chunks: int = 0
    clipped_samples: int = 0
    residual_fixups: int = 0
    seconds: float = 0.0
    manifest: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------ helpers


def quantise(x: np.ndarray) -> tuple[np.ndarray, int]:
    """float (full scale 1.0) -> int32 24-bit values, and how many samples were clipped."""
    scaled = np.rint(np.asarray(x, dtype=np.float64) * FULL_SCALE)
    clipped = int(np.count_nonzero((scaled < PCM_MIN) | (scaled > PCM_MAX)))
    return np.clip(scaled, PCM_MIN, PCM_MAX).astype(np.int32), clipped


def _read_int(sf_file: sf.SoundFile, start: int, frames: int) -> np.ndarray:
    sf_file.seek(start)
    data = sf_file.read(frames, dtype="float64", always_2d=True)
    if data.shape[0] != frames:
        raise SeparationError(f"short read at frame {start}: wanted {frames}, got {data.shape[0]}")
    return quantise(data)[0]


def fix_residual(mix: np.ndarray, parts: list[np.ndarray]) -> tuple[np.ndarray, int]:
    """other = mix - sum(parts), all 24-bit ints; parts (int64, in full scale) are adjusted in place where
    the residual would overflow, so that sum(parts) + other == mix exactly and everything stays in range."""
    other = mix.astype(np.int64) - sum(p.astype(np.int64) for p in parts)
    excess = other - np.clip(other, PCM_MIN, PCM_MAX)
    fixups = int(np.count_nonzero(excess))
    if fixups:
        other -= excess
        for part in parts:
            # Move as much of the excess into this part as its headroom allows.
            shift = np.clip(excess, PCM_MIN - part, PCM_MAX - part)
            part += shift
            excess -= shift
        if np.any(excess):  # impossible while mix is within full scale
            raise SeparationError("could not keep stems within full scale while summing to the input")
    return other, fixups


def _decode_with_ffmpeg(source: Path) -> tuple[np.ndarray, int]:
    """A file libsndfile cannot open, decoded and checked as ingest does (same limits, same reasons)."""
    from audiomixer.dsp.audio_io import AudioDecodeError, AudioLimits, decode_audio

    try:
        decoded = decode_audio(source.read_bytes(), AudioLimits.from_settings())
    except AudioDecodeError as exc:
        raise SeparationError(f"{source.name}: {exc.reason}") from exc
    return decoded.samples.astype(np.float64), decoded.sample_rate


def _conform_source(source: Path, samplerate: int, channels: int, tmp_dir: Path) -> Path:
    """The source itself when it is already seekable audio at the model's rate and channel count,
    otherwise a 24-bit FLAC conformed to them. Conforming loads the file whole: our normalised sources
    (44.1 kHz stereo FLAC) never take this path."""
    try:
        info: Any = sf.info(str(source))
    except sf.LibsndfileError:
        info = None  # M4A, Opus in WebM, WMA...: FFmpeg reads them
    if (
        info is not None
        and info.samplerate == samplerate
        and info.channels == channels
        and info.format in _SEEKABLE_FORMATS
    ):
        return source
    from scipy.signal import resample_poly

    if info is None:
        data, rate = _decode_with_ffmpeg(source)
    else:
        data, rate = sf.read(str(source), dtype="float64", always_2d=True)
    source_channels = data.shape[1]
    if data.shape[1] != channels:
        # Same rule as demucs.audio.convert_audio_channels.
        if channels == 1:
            data = data.mean(axis=1, keepdims=True)
        elif data.shape[1] == 1:
            data = np.repeat(data, channels, axis=1)
        elif data.shape[1] >= channels:
            data = data[:, :channels]
        else:
            raise SeparationError(f"cannot make {channels} channels out of {data.shape[1]}")
    if rate != samplerate:
        g = math.gcd(rate, samplerate)
        data = resample_poly(data, samplerate // g, rate // g, axis=0)
    out = tmp_dir / "conformed.flac"
    sf.write(str(out), quantise(data)[0] << 8, samplerate, format="FLAC", subtype="PCM_24")
    logger.info(
        "conformed %s (%d Hz, %d ch) to %d Hz, %d ch", source, rate, source_channels, samplerate, channels
    )
    return out


def _mono_stats(path: Path) -> tuple[float, float, int]:
    """Mean and (unbiased) std of the mono mix (what `demucs.separate` normalises with), streaming."""
    total = 0.0
    total_sq = 0.0
    frames = 0
    with sf.SoundFile(str(path)) as f:
        while True:
            block = f.read(_READ_BLOCK, dtype="float64", always_2d=True)
            if block.shape[0] == 0:
                break
            mono = quantise(block)[0].mean(axis=1, dtype=np.float64) / FULL_SCALE
            total += float(mono.sum())
            total_sq += float(np.dot(mono, mono))
            frames += block.shape[0]
    mean = total / frames if frames else 0.0
    var = (total_sq - frames * mean * mean) / (frames - 1) if frames > 1 else 0.0
    return mean, math.sqrt(max(var, 0.0)), frames


def model_stem_set(model: DemucsModel, two_stems: str | None = None) -> StemSet:
    """The stems separating with `model` gives (its `sources`, or `two_stems` and the rest)."""
    try:
        return stem_set(list(model_attr(model, "sources")), two_stems)
    except ValueError as exc:
        raise SeparationError(str(exc)) from exc


def _source_index(model: DemucsModel, stems: StemSet) -> list[int]:
    sources = list(model_attr(model, "sources"))
    return [sources.index(s) for s in stems.model_stems]


def _model_device(model: DemucsModel) -> torch.device:
    return next(iter(model.parameters())).device


# ------------------------------------------------------------------ the segment grid


@dataclass(frozen=True)
class SegmentGrid:
    """Demucs' segment grid over the whole song, grouped into chunks of `per_chunk` segments."""

    frames: int
    segment_length: int
    stride: int
    per_chunk: int
    margin: int  # input context read around a chunk: Demucs pads segments with real neighbouring audio

    @property
    def n_segments(self) -> int:
        return max(1, -(-self.frames // self.stride))

    @property
    def n_chunks(self) -> int:
        return -(-self.n_segments // self.per_chunk)

    def offsets(self, k: int) -> range:
        first = k * self.per_chunk
        last = min((k + 1) * self.per_chunk, self.n_segments)
        return range(first * self.stride, last * self.stride, self.stride)

    def span(self, k: int) -> tuple[int, int]:
        """Frames chunk k contributes to."""
        offs = self.offsets(k)
        return offs[0], min(offs[-1] + self.segment_length, self.frames)

    def final_until(self, k: int) -> int:
        """After chunk k, every frame before this one has all its contributions."""
        return self.frames if k == self.n_chunks - 1 else (k + 1) * self.per_chunk * self.stride

    def window(self, k: int) -> tuple[int, int]:
        start, end = self.span(k)
        return max(0, start - self.margin), min(self.frames, end + self.margin)

    def weight(self) -> np.ndarray:
        # Same triangle as demucs.apply.apply_model (transition_power=1).
        n = self.segment_length
        w = np.concatenate([np.arange(1, n // 2 + 1), np.arange(n - n // 2, 0, -1)]).astype(np.float64)
        w /= w.max()
        return w

    def total_weight(self, start: int, end: int, weight: np.ndarray) -> np.ndarray:
        """Sum of all segments' weights over [start, end) (the normaliser of the one-go overlap-add)."""
        total = np.zeros(end - start, dtype=np.float64)
        first = max(0, (start - self.segment_length) // self.stride)
        last = min(self.n_segments, end // self.stride + 1)
        for j in range(first, last):
            off = j * self.stride
            seg_end = min(off + self.segment_length, self.frames)
            lo, hi = max(off, start), min(seg_end, end)
            if lo < hi:
                total[lo - start : hi - start] += weight[lo - off : hi - off]
        return total


def _pads_itself(model: DemucsModel) -> bool:
    return all(hasattr(sub, "valid_length") for sub in sub_models(model))


def _valid_length(model: DemucsModel, length: int, segment_override: float | None) -> int:
    longest = length
    for sub in sub_models(model):
        if isinstance(sub, HTDemucs) and segment_override is not None:
            longest = max(longest, int(segment_override * sub.samplerate))
        elif hasattr(sub, "valid_length"):
            try:
                longest = max(longest, int(sub.valid_length(length)))
            except ValueError as exc:  # HTDemucs: segment longer than it was trained on
                raise SeparationError(f"segment too long for this model: {exc}") from exc
    return longest


def make_grid(
    model: DemucsModel, frames: int, *, chunk_s: float, overlap_s: float, segment: float | None
) -> tuple[SegmentGrid, float]:
    """The grid and the Demucs overlap fraction used on it."""
    if chunk_s <= 0 or overlap_s < 0:
        raise SeparationError(f"chunk_s must be > 0 and overlap_s >= 0 (got {chunk_s}, {overlap_s})")
    sr = int(model_attr(model, "samplerate"))
    subs = sub_models(model)
    if segment is None:
        # Exactly the length apply_model derives from each model's (possibly Fraction) segment.
        segment_length = min(int(sr * sub.segment) for sub in subs)
        seg_s = model_segment_s(model)
    else:
        seg_s = float(segment)
        segment_length = int(sr * seg_s)
        limit = min((float(sub.segment) for sub in subs if isinstance(sub, HTDemucs)), default=math.inf)
        if seg_s > limit:
            raise SeparationError(f"segment {seg_s} s exceeds the {limit} s this model was trained on")
    # Demucs' default overlap, raised if the caller asks for more context at chunk boundaries.
    overlap = min(0.75, max(DEMUCS_OVERLAP, overlap_s / seg_s))
    stride = int((1 - overlap) * segment_length)
    if stride <= 0:
        raise SeparationError(f"segment {seg_s} s is too short")
    # Only neighbouring chunks may overlap, so a chunk holds at least one segment overlap's worth.
    per_chunk = max(1, round(chunk_s * sr / stride), -(-(segment_length - stride) // stride))
    margin = _valid_length(model, segment_length, segment)
    return SegmentGrid(frames, segment_length, stride, per_chunk, margin), overlap


# ------------------------------------------------------------------ one-go reference


def normalise_stats(mix: np.ndarray) -> tuple[float, float]:
    mono = mix.mean(axis=1, dtype=np.float64)
    return float(mono.mean()), float(mono.std(ddof=1)) if mono.size > 1 else 0.0


def apply_model_whole(
    model: DemucsModel,
    mix: np.ndarray,
    *,
    segment: float | None = None,
    overlap: float = DEMUCS_OVERLAP,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Plain Demucs on the whole song at once (what `demucs.separate` does, shifts=0): (frames, ch)
    float -> (sources, frames, ch) float32 in `model.sources` order. The reference the chunked path is
    compared with, and the benchmark's baseline."""
    mean, std = normalise_stats(mix)
    std = std if std > 1e-8 else 1.0
    tensor = torch.from_numpy(((mix - mean) / std).T.astype(np.float32))[None]
    dev = torch.device(device) if device is not None else _model_device(model)
    out = apply_model(model, tensor, shifts=0, split=True, overlap=overlap, segment=segment, device=dev)
    return (out[0].cpu().numpy() * std + mean).transpose(0, 2, 1).astype(np.float32)


# ------------------------------------------------------------------ the separator


class _Assembler:
    """Adds chunk contributions in order, derives `other`, and streams the finished frames to FLAC."""

    def __init__(
        self, source: Path, paths: dict[str, Path], samplerate: int, channels: int, stems: StemSet
    ) -> None:
        self.stems = stems
        self.reader = sf.SoundFile(str(source))
        self.writers = {
            stem: sf.SoundFile(str(path), "w", samplerate, channels, subtype="PCM_24", format="FLAC")
            for stem, path in paths.items()
        }
        self.pos = 0
        self.tail: np.ndarray | None = None
        self.clipped = 0
        self.fixups = 0

    def add(self, start: int, contribution: np.ndarray, final_until: int) -> None:
        if start != self.pos:
            raise SeparationError(f"chunk starts at {start}, expected {self.pos}")
        acc = contribution.astype(np.int64)
        if self.tail is not None:
            acc[:, : self.tail.shape[1]] += self.tail
        n_final = final_until - self.pos
        final, self.tail = acc[:, :n_final], acc[:, n_final:]
        # Two quantised contributions can add past full scale.
        over = (final < PCM_MIN) | (final > PCM_MAX)
        self.clipped += int(np.count_nonzero(over))
        parts = [np.clip(final[i], PCM_MIN, PCM_MAX) for i in range(len(self.stems.model_stems))]
        mix = _read_int(self.reader, self.pos, n_final)
        residual, fixups = fix_residual(mix, parts)
        self.fixups += fixups
        for stem, data in (*zip(self.stems.model_stems, parts, strict=True), (self.stems.residual, residual)):
            self.writers[stem].write(data.astype(np.int32) << 8)
        self.pos = final_until

    def close(self) -> None:
        self.reader.close()
        for w in self.writers.values():
            w.close()


def separate_to_files(
    source: Path,
    out_dir: Path,
    *,
    model: DemucsModel,
    model_name: str,
    chunk_s: float = 30.0,
    overlap_s: float = 1.0,
    segment: float | None = None,
    device: str | torch.device | None = None,
    store: CheckpointStore | None = None,
    source_id: str | None = None,
    on_progress: ProgressCallback | None = None,
    work_dir: Path | None = None,
    two_stems: str | None = None,
) -> SeparationResult:
    """Separate `source` into `out_dir/{stem}.flac` (PCM_24, model samplerate), chunk by chunk, for the
    stems of `model_stem_set(model, two_stems)` (the model's sources, or `two_stems` + `no_{two_stems}`).

    With a `store`, every finished chunk is checkpointed and a rerun with the same configuration
    (see the manifest) resumes after the last finished chunk; checkpoints of another configuration are
    cleared. The caller deletes the checkpoints once the stems are safe (`store.clear()`).
    `on_progress(percent, message)` is called after each chunk; an exception from it aborts the run
    after that chunk's checkpoint is saved. `source_id` identifies the source in the manifest (default:
    its path, size and mtime)."""
    t0 = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    stems = model_stem_set(model, two_stems)
    stem_index = _source_index(model, stems)
    sr, channels = int(model_attr(model, "samplerate")), int(model_attr(model, "audio_channels"))
    dev = torch.device(device) if device is not None else _model_device(model)

    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        src = _conform_source(Path(source), sr, channels, Path(tmp))
        mean, std, frames = _mono_stats(src)
        if frames == 0:
            raise SeparationError(f"{source} has no audio frames")
        grid, overlap = make_grid(model, frames, chunk_s=chunk_s, overlap_s=overlap_s, segment=segment)
        if source_id is None:
            st = Path(source).stat()
            source_id = f"file:{Path(source).resolve()}:{st.st_size}:{st.st_mtime_ns}"
        manifest: dict[str, Any] = {
            "version": MANIFEST_VERSION,
            "model": model_name,
            "sources": list(model_attr(model, "sources")),
            "stems": list(stems.names),
            "samplerate": sr,
            "channels": channels,
            "frames": frames,
            "source_id": source_id,
            "segment_length": grid.segment_length,
            "stride": grid.stride,
            "per_chunk": grid.per_chunk,
            "segment_override": segment,
            "overlap": overlap,
            "shifts": 0,
            "mean": mean,
            "std": std,
        }
        if store is not None and store.read_manifest() != manifest:
            store.clear()
            store.write_manifest(manifest)
        result = SeparationResult(
            paths={stem: out_dir / f"{stem}.flac" for stem in stems.names},
            frames=frames,
            samplerate=sr,
            chunks=grid.n_chunks,
            manifest=manifest,
        )
        norm_std = std if std > 1e-8 else 1.0
        weight = grid.weight()
        eta = _ChunkClock(grid.n_chunks)
        assembler = _Assembler(src, result.paths, sr, channels, stems)
        try:
            with sf.SoundFile(str(src)) as reader, ThreadPoolExecutor(1, "separation-io") as pool:
                pending: Future[None] | None = None
                for k in range(grid.n_chunks):
                    start, end = grid.span(k)
                    saved = store.load(k) if store is not None else None
                    if saved is not None and not _valid_checkpoint(saved, stems, end - start, channels):
                        logger.warning("checkpoint of chunk %d has the wrong shape; recomputing", k)
                        saved = None
                    if saved is None:
                        started = time.perf_counter()
                        outputs = _run_segments(
                            model, reader, grid, k, stem_index, mean, norm_std, segment, dev
                        )
                        eta.computed(time.perf_counter() - started)
                        result.computed_chunks += 1
                    else:
                        outputs = None
                        result.resumed_chunks += 1
                    # Model work on chunk k+1 overlaps the encoding/upload/writing of chunk k.
                    if pending is not None:
                        pending.result()
                        _report(on_progress, k - 1, grid.n_chunks, eta.left_s(k + 1))
                    pending = pool.submit(
                        _finish_chunk, k, grid, weight, outputs, saved, stems, store, assembler, result
                    )
                assert pending is not None
                pending.result()
                _report(on_progress, grid.n_chunks - 1, grid.n_chunks, 0.0)
        finally:
            assembler.close()
        result.clipped_samples += assembler.clipped
        result.residual_fixups = assembler.fixups
    result.seconds = time.perf_counter() - t0
    logger.info(
        "separated %d frames in %d chunks (%d computed, %d resumed) in %.1f s; clipped %d, fixups %d",
        frames,
        grid.n_chunks,
        result.computed_chunks,
        result.resumed_chunks,
        result.seconds,
        result.clipped_samples,
        result.residual_fixups,
    )
    return result


def _valid_checkpoint(saved: Stems, stems: StemSet, frames: int, channels: int) -> bool:
    return set(saved) == set(stems.model_stems) and all(v.shape == (frames, channels) for v in saved.values())


class _ChunkClock:
    """Time left from the measured model time per chunk (resumed chunks cost nothing and don't count)."""

    def __init__(self, n_chunks: int) -> None:
        self.n_chunks, self.seconds, self.count = n_chunks, 0.0, 0

    def computed(self, seconds: float) -> None:
        self.seconds += seconds
        self.count += 1

    def left_s(self, through: int) -> float | None:
        """Model seconds left once chunks 0 .. `through` - 1 are computed; None before any chunk was
        timed."""
        if self.count == 0:
            return None
        return self.seconds / self.count * (self.n_chunks - through)


def time_left_text(seconds: float) -> str:
    """'about 2 min left' / 'about 40 s left' / 'a few seconds left', rounded as a person would read it."""
    if seconds < 10:
        return "a few seconds left"
    if seconds < 90:
        return f"about {max(10, round(seconds / 10) * 10)} s left"
    return f"about {round(seconds / 60)} min left"


def progress_message(k: int, n: int, left_s: float | None) -> str:
    """What a person sees after chunk `k` (0-based) of `n` is finished, e.g. 'separating chunk 3 of 7,
    about 2 min left'."""
    if k + 1 >= n:
        return f"separated chunk {n} of {n}"
    text = f"separating chunk {k + 2} of {n}"
    return f"{text}, {time_left_text(left_s)}" if left_s is not None else text


def _report(on_progress: ProgressCallback | None, k: int, n: int, left_s: float | None) -> None:
    if on_progress is not None:
        on_progress(int(100 * (k + 1) / n), progress_message(k, n, left_s))


def _run_segments(
    model: DemucsModel,
    reader: sf.SoundFile,
    grid: SegmentGrid,
    k: int,
    stem_index: list[int],
    mean: float,
    std: float,
    segment: float | None,
    device: torch.device,
) -> list[tuple[int, np.ndarray]]:
    """Model outputs (denormalised, the model stems only) of chunk k's segments, as (offset, array)."""
    ws, we = grid.window(k)
    mix = _read_int(reader, ws, we - ws).astype(np.float32) / FULL_SCALE
    window = torch.from_numpy(((mix - mean) / std).T.copy())[None]
    outputs: list[tuple[int, np.ndarray]] = []
    short_tail_pad = not _pads_itself(model)
    for off in grid.offsets(k):
        # Exactly the TensorChunk Demucs' split loop builds, on a window wide enough that its padding
        # reads the same neighbouring audio it would read from the whole song.
        chunk = TensorChunk(window, off - ws, grid.segment_length)
        length = chunk.length
        if short_tail_pad and length < MIN_SEGMENT_FRAMES:
            # HDemucs (demucs_unittest) fails on a last segment of a few frames, which a song's length
            # can leave; give it zeros to chew on as HTDemucs does internally, and keep `length` frames.
            padded = torch.nn.functional.pad(chunk.padded(length), (0, MIN_SEGMENT_FRAMES - length))
            out = apply_model(model, padded, shifts=0, split=False, segment=segment, device=device)[
                ..., :length
            ]
        else:
            out = apply_model(model, chunk, shifts=0, split=False, segment=segment, device=device)
        y = out[0, stem_index].float().cpu().numpy()  # (model stems, ch, len)
        outputs.append((off, y.transpose(0, 2, 1) * std + mean))
    return outputs


def _finish_chunk(
    k: int,
    grid: SegmentGrid,
    weight: np.ndarray,
    outputs: list[tuple[int, np.ndarray]] | None,
    saved: Stems | None,
    stems: StemSet,
    store: CheckpointStore | None,
    assembler: _Assembler,
    result: SeparationResult,
) -> None:
    start, end = grid.span(k)
    if outputs is not None:
        acc = np.zeros((len(stems.model_stems), end - start, outputs[0][1].shape[2]), dtype=np.float64)
        for off, y in outputs:
            n = y.shape[1]
            acc[:, off - start : off - start + n] += weight[:n, None] * y
        acc /= grid.total_weight(start, end, weight)[None, :, None]
        contribution, clipped = quantise(acc)
        result.clipped_samples += clipped
        saved = {name: contribution[i] for i, name in enumerate(stems.model_stems)}
        if store is not None:
            store.save(k, saved)
    assert saved is not None
    contribution = np.stack([saved[name] for name in stems.model_stems])
    assembler.add(start, contribution, grid.final_until(k))
