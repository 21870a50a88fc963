"""Decode uploads with FFmpeg (through PyAV), validate them, normalise them, encode outputs.

Every upload is untrusted. FFmpeg recognises the container by its content (never by a file name) and
decodes every format it knows that holds audio: WAV, AIFF, FLAC, MP3, Ogg (Vorbis, Opus), MP4/M4A (AAC,
ALAC), WebM/Matroska, WMA and more. Its own error detection (``err_detect``: checksums, bitstream and
buffer errors, and ``explode``, which stops the decoder at the first damaged frame instead of concealing
it) catches corruption; :mod:`audiomixer.dsp.audio_checks` adds what it is silent about and holds the
error codes. Damage followed by more audio is ``corrupt``; damage in the last packet, or less audio than
the header states, is ``truncated``. Memory is bounded before decoding (declared frames x channels
against ``max_samples``) and while decoding (a running cap), whatever the header claims.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import av
import numpy as np

from audiomixer.dsp.audio_checks import (
    ERROR_HTTP_STATUS,
    MAX_PLAUSIBLE_FLOAT,
    MAX_PLAUSIBLE_LOSSY,
    SUPPORTED_HINT,
    TRUNCATION_TOLERANCE_S,
    AudioDecodeError,
    check_asf,
    check_finite,
    check_length,
    check_not_random,
    check_ogg_end,
    check_wav,
    fail,
    flac_md5_update,
    fmt_bytes,
    fmt_s,
    not_audio,
    truncated,
    unrecognised,
)

if TYPE_CHECKING:
    from audiomixer.settings import Settings

# Checksums verified, bitstream and buffer errors reported, and the decoder stops at the first damaged
# frame rather than concealing it (FFmpeg's "explode").
_FFMPEG_OPTIONS = {"err_detect": "crccheck+bitstream+buffer+explode"}
# People's names for FFmpeg's demuxers (the first of each comma-separated name).
_CONTAINER_NAMES = {
    "wav": "WAV",
    "aiff": "AIFF",
    "flac": "FLAC",
    "mp3": "MP3",
    "ogg": "Ogg",
    "mp4": "MP4/M4A",
}
_CONTAINER_NAMES |= {"matroska": "WebM/Matroska", "asf": "WMA", "aac": "AAC"}
# Containers whose header states the length exactly, so a shorter decode means a shorter file.
_STATED_LENGTH = ("wav", "aiff", "flac", "ogg", "mp4", "mp3", "matroska")
_LOSSLESS_CODECS = ("flac", "alac", "wavpack", "tta", "ape")
# FFmpeg's reasons reach Capture (and the errors' messages) only when its logging is on; what is logged
# outside a capture is not printed (the reasons are in the errors raised).
av.logging.set_level(av.logging.ERROR)
logging.getLogger("libav").addHandler(logging.NullHandler())
logging.getLogger("libav").propagate = False


@dataclass(frozen=True)
class AudioLimits:
    """What a decode accepts; the values come from the settings model (`from_settings`), never repeated."""

    max_bytes: int
    max_duration_s: float
    min_duration_s: float
    max_channels: int
    min_sample_rate: int
    max_sample_rate: int
    # Decoded frames x channels: bounds memory (4 bytes each) whatever rate and channel count allow.
    max_samples: int

    @classmethod
    def from_settings(
        cls, settings: Settings | None = None, *, max_duration_s: float | None = None
    ) -> AudioLimits:
        """Limits from the settings model; ``max_duration_s`` overrides (style sounds are shorter)."""
        if settings is None:
            from audiomixer.settings import get_settings

            settings = get_settings()
        return cls(
            max_bytes=settings.max_upload_bytes,
            max_duration_s=settings.max_duration_s if max_duration_s is None else max_duration_s,
            min_duration_s=settings.min_duration_s,
            max_channels=settings.max_channels,
            min_sample_rate=settings.min_sample_rate,
            max_sample_rate=settings.max_sample_rate,
            max_samples=settings.max_decoded_samples,
        )


@dataclass(frozen=True)
class AudioInfo:
    format: str  # FFmpeg's container name: "wav", "flac", "ogg", "mp3", "aiff", "mp4", "matroska", "asf"...
    codec: str  # FFmpeg's decoder: "pcm_s16le", "flac", "vorbis", "opus", "mp3float", "aac", "alac"...
    sample_rate: int  # the rate the decoder delivers (Opus always decodes at 48 kHz)
    channels: int
    frames: int  # from probe(): what the header declares (0: unknown); from decode_audio(): decoded
    duration_s: float
    # Speaker positions in FFmpeg's names ("FL", "FR", "FC", "LFE", ...), () when the file does not say.
    positions: tuple[str, ...] = ()


@dataclass(frozen=True)
class DecodedAudio:
    samples: np.ndarray  # float32, (frames, channels)
    sample_rate: int
    info: AudioInfo


@dataclass
class _Header:
    """What FFmpeg (and the checks it does not make) learnt before decoding."""

    info: AudioInfo
    declared: int | None  # frames the header states, None when only decoding can tell
    cap: int  # frames the memory budget allows
    tolerance: int  # frames the decoded length may fall short of (or, lossless, exceed) the declared
    flac_md5: bytes | None = None
    flac_bps: int = 0


# --------------------------------------------------------------------------------------------------
# FFmpeg
# --------------------------------------------------------------------------------------------------


def _ffmpeg_reason(exc: Exception, logs: list[tuple[int, str, str]]) -> tuple[str, str]:
    """(FFmpeg component, its own words) for an error: what it logged with the error, else the last error
    it logged, else the exception's text."""
    errors = [(name, text.strip()) for level, name, text in logs if level <= av.logging.ERROR]
    log = getattr(exc, "log", None)
    if log and len(log) == 3:
        errors.append((log[1], str(log[2]).strip()))
    if errors:
        return errors[-1]
    return "", str(getattr(exc, "strerror", None) or exc).strip()


def _open_error(exc: Exception, logs: list[tuple[int, str, str]], data: bytes) -> AudioDecodeError:
    """An actionable error for a file FFmpeg could not open."""
    name, said = _ffmpeg_reason(exc, logs)
    what = _what(_short_name(name)) if name else "audio"
    low = said.lower()
    other = not_audio(data)
    if other is not None:
        return other
    if isinstance(exc, EOFError) or "end of file" in low:
        return fail("truncated", "The file is truncated: it ends before its audio. Upload the complete file.")
    if "moov atom not found" in low:
        return fail(
            "truncated",
            "The MP4/M4A file is incomplete: its index (moov atom) is missing, as when a download or "
            "recording was cut short. Upload the complete file.",
        )
    if "two consecutive mpeg audio frames" in low:
        return fail("truncated", "The MP3 file holds less than two audio frames: it is truncated or damaged.")
    if "sample rate" in low or "samplerate" in low or (name == "aiff" and "exp " in low):
        return fail("bad_sample_rate", f"The {what} header declares an invalid sample rate ({said}).")
    if "crc" in low or any("crc" in text.lower() for _, _, text in logs):
        return fail("corrupt", f"The {what} file is corrupt: a checksum does not match ({said}).")
    if name in ("", "mjpeg", "png"):
        return unrecognised()
    return fail("corrupt", f"The {what} file is corrupt and cannot be read ({said}). Export it again.")


def _open(data: bytes, limits: AudioLimits, logs: list[tuple[int, str, str]]) -> tuple[Any, _Header]:
    """The open container (the caller closes it) and what its header says, checked against the limits."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) == 0:
        raise fail("empty", "The file is empty (0 bytes). Upload it again; the transfer may have failed.")
    if len(data) > limits.max_bytes:
        raise fail(
            "too_large",
            f"The file is {fmt_bytes(len(data))}; the limit is {fmt_bytes(limits.max_bytes)}. "
            f"Upload a shorter or compressed (FLAC, MP3, M4A) file.",
        )
    check_wav(data, limits.max_channels)
    check_ogg_end(data)
    check_asf(data)
    try:
        container = av.open(io.BytesIO(data), "r", options=_FFMPEG_OPTIONS, metadata_errors="ignore")
    except (av.FFmpegError, EOFError, ValueError) as exc:
        raise _open_error(exc, logs, data) from exc
    try:
        return container, _header(container, data, limits)
    except BaseException:
        container.close()
        raise


def _header(container: Any, data: bytes, limits: AudioLimits) -> _Header:
    fmt = _short_name(container.format.name)
    what = _what(fmt)
    if not container.streams.audio:
        kinds = {s.type for s in container.streams}
        if kinds - {"video", "subtitle", "attachment"}:
            raise fail(
                "unsupported_codec", f"The {what} file holds a stream FFmpeg cannot decode. {SUPPORTED_HINT}"
            )
        raise not_audio(data) or fail(
            "not_audio", f"This file holds no audio: it is {container.format.long_name}. {SUPPORTED_HINT}"
        )
    stream = container.streams.audio[0]
    cc = stream.codec_context
    if cc is None or cc.codec is None or cc.name == "none":
        raise fail("unsupported_codec", f"The {what} file holds audio FFmpeg cannot decode. {SUPPORTED_HINT}")
    codec = cc.name
    sr, channels = int(cc.sample_rate or 0), int(cc.channels or 0)
    md5, bps, declared = None, 0, None
    if codec == "flac" and cc.extradata and len(cc.extradata) >= 34:
        packed = int.from_bytes(cc.extradata[10:18], "big")
        sr = packed >> 44  # STREAMINFO's own rate: FFmpeg would take the frames' and hide a lying header
        bps, total, md5 = ((packed >> 36) & 0x1F) + 1, packed & ((1 << 36) - 1), bytes(cc.extradata[18:34])
        declared = total or None
        md5 = md5 if any(md5) else None
    label = f"{what} ({codec})" if codec not in (fmt, "pcm_s16le") else what
    if sr <= 0 or not math.isfinite(sr):
        raise fail("bad_sample_rate", f"The {label} header declares an invalid sample rate ({sr} Hz).")
    if sr < limits.min_sample_rate or sr > limits.max_sample_rate:
        raise fail(
            "bad_sample_rate",
            f"The {label} header declares a sample rate of {sr} Hz; supported rates are "
            f"{limits.min_sample_rate}-{limits.max_sample_rate} Hz. Resample it (44.1 or 48 kHz) and upload "
            "again.",
        )
    if channels <= 0:
        raise fail("bad_channels", f"The {label} header declares {channels} channels; the file is corrupt.")
    if channels > limits.max_channels:
        raise fail(
            "bad_channels",
            f"The {label} header declares {channels} channels; at most {limits.max_channels} are supported. "
            "Mix it down to stereo before uploading.",
        )
    if declared is None and fmt in _STATED_LENGTH and (fmt != "mp3" or _mp3_states_length(data)):
        if stream.duration and stream.time_base:
            declared = round(float(stream.duration * stream.time_base) * sr)
        elif container.duration:
            declared = round(container.duration / 1e6 * sr)
    positions = tuple(ch.name for ch in cc.layout.channels) if cc.layout else ()
    if len(positions) != channels or "NONE" in positions:
        positions = ()
    info = AudioInfo(fmt, codec, sr, channels, declared or 0, (declared or 0) / sr, positions)
    cap = min(int(limits.max_duration_s * sr), limits.max_samples // channels)
    if declared is not None:
        check_length(declared, cap, sr, channels, limits)
    lossless = codec.startswith("pcm_") or codec in _LOSSLESS_CODECS
    # Lossy codecs' priming and padding make their counts approximate by up to a frame or two.
    tolerance = max(1, int(TRUNCATION_TOLERANCE_S * sr)) if lossless else 2 * max(cc.frame_size, 1024)
    if lossless and declared and codec.startswith("pcm_"):
        width = int("".join(c for c in codec if c.isdigit()) or 8) // 8
        if (declared - tolerance) * channels * width > len(data):
            held = len(data) // (channels * width)
            raise truncated(what, declared / sr, held / sr)
    return _Header(info, declared, cap, tolerance, md5, bps)


def _what(fmt: str) -> str:
    return _CONTAINER_NAMES.get(fmt, fmt.upper())


def _short_name(ffmpeg_name: str) -> str:
    """FFmpeg's demuxer name ("mov,mp4,m4a,3gp,3g2,mj2") as ours ("mp4")."""
    first = ffmpeg_name.split(",")[0]
    return {"mov": "mp4"}.get(first, first)


def _mp3_states_length(data: bytes) -> bool:
    """An MP3 states its length only in a Xing/Info/VBRI frame; without one FFmpeg guesses from the bit
    rate, which VBR files make wrong."""
    return any(tag in data[:16384] for tag in (b"Xing", b"Info", b"VBRI"))


def sniff_format(data: bytes) -> str | None:
    """FFmpeg's name for the container holding audio ("wav", "flac", "mp4", ...), or None. By content
    only, never by a file name."""
    try:
        with av.logging.Capture(True), av.open(io.BytesIO(bytes(data)), "r", metadata_errors="ignore") as c:
            return _short_name(c.format.name) if c.streams.audio else None
    except (av.FFmpegError, EOFError, ValueError):
        return None


def probe(data: bytes, limits: AudioLimits) -> AudioInfo:
    """Header-level checks, no decoding: format, codec, rate, channels, declared length against the
    limits, and what FFmpeg sees of truncation before decoding. ``frames`` is the declared length (0 where
    only decoding can tell). Raises AudioDecodeError."""
    with av.logging.Capture(True) as logs:
        container, header = _open(data, limits, logs)
        container.close()
    return header.info


def decode_audio(data: bytes, limits: AudioLimits) -> DecodedAudio:
    """Full decode with integrity checks. Returns float32 samples shaped (frames, channels) at the file's
    own rate. Memory is bounded by the limits, not by what the header claims. Raises AudioDecodeError."""
    with av.logging.Capture(True) as logs:
        container, header = _open(data, limits, logs)
        with container:
            out, pos, md5 = _decode(container, header, limits, logs)
    info, sr = header.info, header.info.sample_rate
    _check_decoded_length(header, pos, limits)
    if header.declared and info.format in ("ogg", "mp4"):
        pos = min(pos, header.declared)  # their stated length trims the last frame's padding
    if md5 is not None and md5.digest() != header.flac_md5:
        raise fail(
            "corrupt",
            "The FLAC file is corrupt: the decoded audio does not match the checksum stored in its header.",
        )
    samples = out[:pos]
    if out.shape[0] - pos > max(1024, pos // 16):
        samples = samples.copy()  # don't pin a mostly empty buffer
    if info.codec.startswith(("pcm_s", "pcm_u")):
        check_not_random(samples, _what(info.format))
    decoded = AudioInfo(info.format, info.codec, sr, info.channels, pos, pos / sr, info.positions)
    return DecodedAudio(samples=samples, sample_rate=sr, info=decoded)


def _decode(
    container: Any, header: _Header, limits: AudioLimits, logs: list[Any]
) -> tuple[np.ndarray, int, Any]:
    """Decode into one buffer sized from the header, growing only if the header under-reported, and never
    past the cap + 1 frame: that is the memory bound. Returns (buffer, frames, flac md5).

    Damage (the decoder stopping, or FFmpeg logging an error while a parser drops a frame) followed by
    more audio is corruption; damage in the last packet is a file cut short."""
    info, stream = header.info, container.streams.audio[0]
    sr, channels = info.sample_rate, info.channels
    hint = header.declared or sr * 60
    out = np.empty((max(1, min(header.cap + 1, hint + 1)), channels), dtype=np.float32)
    md5 = hashlib.md5(usedforsecurity=False) if header.flac_md5 is not None else None
    lossy = not (info.codec.startswith("pcm_") or info.codec in _LOSSLESS_CODECS)
    max_abs = MAX_PLAUSIBLE_FLOAT if info.codec.startswith("pcm_f") else MAX_PLAUSIBLE_LOSSY
    check_values = lossy or info.codec.startswith("pcm_f")
    # A lossless header that under-reports is caught as soon as decoding passes it, not at the cap.
    lossless_over = None if lossy or not header.declared else header.declared + header.tolerance
    pos, seen, stopped = 0, len(logs), False
    damage: tuple[int, str] | None = None  # (frames decoded before it, FFmpeg's words)
    packets = container.demux(stream)
    while True:
        frames: list[Any] = []
        try:
            packet = next(packets)
            if damage is not None and packet.size:
                raise _corrupt(info, damage[0], header.declared, damage[1])
            frames = [] if stopped else stream.decode(packet)
        except StopIteration:
            packet = None  # the demuxer may log why it stopped (a file ended prematurely)
        except AudioDecodeError:
            raise
        except (av.FFmpegError, EOFError, ValueError) as exc:
            stopped = True
            damage = damage or (pos, _ffmpeg_reason(exc, logs[seen:])[1])
        if damage is None and any(level <= av.logging.ERROR for level, _, _ in logs[seen:]):
            damage = (pos, _ffmpeg_reason(ValueError("damaged frame"), logs[seen:])[1])
        seen = len(logs)
        if packet is None:
            break
        for frame in frames:
            k = frame.samples
            if lossless_over is not None and pos + k > lossless_over:
                _check_decoded_length(header, pos + k, limits)
            if pos + k > out.shape[0]:
                if pos + k > header.cap:
                    check_length(pos + k, header.cap, sr, channels, limits, at_least=True)
                grown = np.empty((min(header.cap + 1, max(2 * out.shape[0], pos + k)), channels), np.float32)
                grown[:pos] = out[:pos]
                out = grown
            raw = frame.to_ndarray()
            raw = raw.T if frame.format.is_planar else raw.reshape(-1, channels)
            if md5 is not None:
                flac_md5_update(md5, raw.astype(np.int32) << (32 - 8 * raw.dtype.itemsize), header.flac_bps)
            block = out[pos : pos + k]
            block[:] = raw
            if raw.dtype.kind in "iu":
                if raw.dtype.kind == "u":
                    block -= np.float32(1 << (8 * raw.dtype.itemsize - 1))
                block *= np.float32(2.0 ** (1 - 8 * raw.dtype.itemsize))
            if check_values:
                check_finite(block, pos, sr, max_abs)
            pos += k
    if damage is not None and damage[0] == 0:
        raise _corrupt(info, 0, header.declared, damage[1], follows=False)
    if damage is not None:
        declared = f" of the {fmt_s(header.declared / sr)} its header declares" if header.declared else ""
        raise fail(
            "truncated",
            f"The file is truncated: its audio breaks off after {fmt_s(damage[0] / sr)}{declared} "
            f"({damage[1]}). Upload the complete file.",
        )
    return out, pos, md5


def _corrupt(
    info: AudioInfo, pos: int, declared: int | None, said: str, follows: bool = True
) -> AudioDecodeError:
    what = _what(info.format)
    of = f" of the {fmt_s(declared / info.sample_rate)} its header declares" if declared else ""
    return fail(
        "corrupt",
        f"The {what} file's {info.codec} audio is corrupt: decoding failed after "
        f"{fmt_s(pos / info.sample_rate)}{of} ({said}){', and more audio follows' if follows else ''}. "
        "Export it again.",
    )


def _check_decoded_length(header: _Header, frames: int, limits: AudioLimits) -> None:
    info, sr, expect = header.info, header.info.sample_rate, header.declared
    if expect is not None:
        lossless = info.codec.startswith("pcm_") or info.codec in _LOSSLESS_CODECS
        tolerance = header.tolerance
        if frames < expect - tolerance:
            raise truncated(_what(info.format), expect / sr, frames / sr)
        if lossless and frames > expect + tolerance:
            raise fail(
                "bad_header",
                f"The {_what(info.format)} file contradicts itself: its "
                f"header says {fmt_s(expect / sr)}, but {fmt_s(frames / sr)} were decoded.",
            )
    if frames == 0:
        raise fail("too_short", "The audio is too short: the file contains no audio samples (0 s).")
    check_length(frames, frames + 1, sr, info.channels, limits)


def resample(samples: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Band-limited resampling along axis 0 with soxr (HQ), as float32.

    Parameters
    ----------
    samples : np.ndarray
        (frames,) or (frames, channels) audio.
    sr_in, sr_out : int
        Sample rates in Hz, of `samples` and of the result.

    Returns
    -------
    np.ndarray
        float32 audio at `sr_out` (the input itself, as float32, when the rates are equal).
    """
    x = np.asarray(samples, dtype=np.float32)
    if sr_in == sr_out:
        return x
    import soxr

    return np.asarray(soxr.resample(x, sr_in, sr_out, quality="HQ"), dtype=np.float32)


def content_hash(content: bytes | np.ndarray) -> str:
    """SHA-256 hex. For bytes: the upload itself, which is what "identical upload" means (cheap, before
    decoding). For an array: its decoded samples with dtype and shape, to spot identical audio in
    different containers."""
    h = hashlib.sha256()
    if isinstance(content, np.ndarray):
        arr = np.ascontiguousarray(content)
        h.update(f"{arr.dtype.str}{arr.shape}".encode())
        h.update(arr.tobytes())
    else:
        h.update(bytes(content))
    return h.hexdigest()


# Normalising and encoding live beside decoding; callers import them from here.
from audiomixer.dsp.audio_convert import downmix_matrix, encode_audio, normalise  # noqa: E402

__all__ = [
    "ERROR_HTTP_STATUS",
    "SUPPORTED_HINT",
    "AudioDecodeError",
    "AudioInfo",
    "AudioLimits",
    "DecodedAudio",
    "content_hash",
    "decode_audio",
    "downmix_matrix",
    "encode_audio",
    "normalise",
    "probe",
    "resample",
    "sniff_format",
]
