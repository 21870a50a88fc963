"""Decode uploads by their content, validate them, normalise them, encode outputs.

Every upload is untrusted. Before libsndfile sees a byte we identify the container by its magic bytes
(never by a filename) and walk its structure ourselves: RIFF/AIFF chunks, FLAC metadata blocks, every
Ogg page (with its CRC) and every MPEG audio frame. That is where truncation, lying headers and corrupt
pages show up, and libsndfile is silent about most of them (it clamps a truncated WAV, skips a corrupt Ogg
page, decodes junk as MP3). Decoding then reads in blocks with a frame budget taken from the limits, so
memory is bounded by ``max_duration_s * sample_rate * channels * 4`` bytes whatever the header claims.

Every rejection is an :class:`AudioDecodeError` with a ``code`` for machines and a ``reason`` a person
can act on. Codes and the HTTP status they suggest:

=====================  =====  ============================================================
code                   HTTP   meaning
=====================  =====  ============================================================
``empty``              422    zero bytes
``too_large``          413    more bytes than ``max_bytes``
``not_audio``          415    not an audio file at all (image, archive, text, ...)
``unsupported_format`` 415    audio, but a container we do not read (M4A, WMA, CAF, ...)
``unsupported_codec``  415    a supported container holding a codec we do not read
``truncated``          422    the file ends before the audio its header promises
``corrupt``            422    damaged data: bad checksum, lost sync, garbage, random bytes
``bad_header``         422    the header contradicts itself
``bad_sample_rate``    422    sample rate 0, absurd or outside the limits
``bad_channels``       422    0 channels or more than ``max_channels``
``too_long``           422    longer than ``max_duration_s``
``too_short``          422    shorter than ``min_duration_s``
``non_finite``         422    NaN or infinity in floating-point samples
=====================  =====  ============================================================
"""

from __future__ import annotations

import hashlib
import io
import math
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import soundfile as sf

if TYPE_CHECKING:
    from audiomixer.settings import Settings

FORMATS: tuple[str, ...] = ("wav", "flac", "ogg", "mp3", "aiff")
SUPPORTED_HINT = "Upload WAV, FLAC, OGG (Vorbis/Opus), MP3 or AIFF."

ERROR_HTTP_STATUS: dict[str, int] = {
    "empty": 422,
    "too_large": 413,
    "not_audio": 415,
    "unsupported_format": 415,
    "unsupported_codec": 415,
    "truncated": 422,
    "corrupt": 422,
    "bad_header": 422,
    "bad_sample_rate": 422,
    "bad_channels": 422,
    "too_long": 422,
    "too_short": 422,
    "non_finite": 422,
}

# A header may promise up to this much more audio than the file holds (writers that round the data size).
_TRUNCATION_TOLERANCE_S = 0.001
_BLOCK_FRAMES = 1 << 16
# Float samples above this (+60 dBFS) are not audio anyone recorded: random bytes read as floats.
_MAX_PLAUSIBLE_FLOAT = 1000.0
# Lossy decoders overshoot full scale a little on hot masters; far beyond is a frame of garbage decoded.
_MAX_PLAUSIBLE_LOSSY = 16.0
# Bytes of junk between MP3 frames a decoder resyncs over; more means the file is damaged.
_MP3_JUNK_MIN = 4096
_MP3_JUNK_FRACTION = 0.01


class AudioDecodeError(ValueError):
    """An upload that cannot be used. ``reason`` is for people, ``code`` for machines."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason

    @property
    def http_status(self) -> int:
        return ERROR_HTTP_STATUS.get(self.code, 422)


@dataclass(frozen=True)
class AudioLimits:
    """What a decode accepts; the values come from the settings model (`from_settings`), never repeated."""

    max_bytes: int
    max_duration_s: float
    min_duration_s: float
    max_channels: int
    min_sample_rate: int
    max_sample_rate: int

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
        )


@dataclass(frozen=True)
class AudioInfo:
    format: str  # "wav" | "flac" | "ogg" | "mp3" | "aiff"
    subtype: str  # libsndfile's name: PCM_16, PCM_24, FLOAT, VORBIS, OPUS, MPEG_LAYER_III, ...
    sample_rate: int  # the rate the decoder delivers (Opus always decodes at 48 kHz)
    channels: int
    frames: int  # from probe(): what the structure declares; from decode_audio(): what was decoded
    duration_s: float
    # Speaker positions for downmixing: WAVE_FORMAT_EXTENSIBLE's mask, else None (default order).
    channel_mask: int | None = None


@dataclass(frozen=True)
class DecodedAudio:
    samples: np.ndarray  # float32, (frames, channels)
    sample_rate: int
    info: AudioInfo


@dataclass
class _Header:
    """What we learnt by walking the container, before decoding."""

    format: str
    subtype: str
    sample_rate: int
    channels: int
    frames: int | None  # None: only decoding can tell
    # Decoding must produce about this many frames, or the file is truncated/corrupt.
    expect_frames: int | None = None
    expect_tolerance: int = 0
    channel_mask: int | None = None
    integer_pcm: bool = False  # uncompressed integer PCM: random bytes decode "fine", so check for them
    float_pcm: bool = False
    flac_md5: bytes | None = None
    flac_bps: int = 0


def _fail(code: str, reason: str) -> AudioDecodeError:
    return AudioDecodeError(code, reason)


def _fmt_bytes(n: float) -> str:
    for unit in ("bytes", "KB", "MB"):
        if n < 1000 or unit == "MB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def _fmt_s(seconds: float) -> str:
    if seconds >= 100:
        return f"{seconds:.0f} s"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    return f"{seconds:.3f} s"


# --------------------------------------------------------------------------------------------------
# Sniffing
# --------------------------------------------------------------------------------------------------

_NOT_AUDIO_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (0, b"\xff\xd8\xff", "a JPEG image"),
    (0, b"GIF87a", "a GIF image"),
    (0, b"GIF89a", "a GIF image"),
    (0, b"%PDF", "a PDF document"),
    (0, b"PK\x03\x04", "a ZIP archive (or a document built on ZIP, such as .docx)"),
    (0, b"PK\x05\x06", "an empty ZIP archive"),
    (0, b"\x1f\x8b", "a gzip archive"),
    (0, b"Rar!\x1a\x07", "a RAR archive"),
    (0, b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (0, b"BZh", "a bzip2 archive"),
    (0, b"\xfd7zXZ\x00", "an xz archive"),
    (0, b"\x7fELF", "an executable program"),
    (0, b"MZ", "a Windows executable"),
    (0, b"MThd", "a MIDI file (notes, not recorded sound; render it to audio first)"),
    (0, b"SQLite format 3\x00", "an SQLite database"),
    (0, b"II*\x00", "a TIFF image"),
    (0, b"MM\x00*", "a TIFF image"),
    (0, b"BM", "a BMP image"),
)

_OTHER_AUDIO_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (4, b"ftyp", "an MP4/M4A/AAC file"),
    (0, b"\x1aE\xdf\xa3", "a Matroska/WebM file"),
    (0, b"0&\xb2u\x8ef\xcf\x11", "a WMA/ASF file"),
    (0, b"caff", "a Core Audio (CAF) file"),
    (0, b".snd", "a Sun/NeXT AU file"),
    (0, b"#!AMR", "an AMR voice recording"),
    (0, b"wvpk", "a WavPack file"),
    (0, b"MAC ", "a Monkey's Audio (APE) file"),
    (0, b"FORM", "an IFF file that is not AIFF"),
    (0, b"RIFX", "a big-endian (RIFX) WAV file"),
    (0, b"W64", "a Sony Wave64 file"),
    (0, b"DSD ", "a DSD (DSF) file"),
    (0, b"FRM8", "a DSD (DFF) file"),
    (0, b"TTA1", "a TTA file"),
)


def _id3v2_size(data: bytes, pos: int = 0) -> int:
    """Length of an ID3v2 tag at ``pos`` (header, body, footer), 0 when there is none."""
    if len(data) < pos + 10 or data[pos : pos + 3] != b"ID3":
        return 0
    size_bytes = data[pos + 6 : pos + 10]
    if any(b & 0x80 for b in size_bytes):
        return 0
    size = (size_bytes[0] << 21) | (size_bytes[1] << 14) | (size_bytes[2] << 7) | size_bytes[3]
    footer = 10 if data[pos + 5] & 0x10 else 0
    return 10 + size + footer


def _skip_id3v2(data: bytes) -> int:
    pos = 0
    # Some taggers stack several tags.
    for _ in range(8):
        size = _id3v2_size(data, pos)
        if not size:
            break
        pos += size
    return pos


def sniff_format(data: bytes) -> str | None:
    """The container by its content ("wav", "flac", "ogg", "mp3", "aiff"), or None. Never by extension."""
    if len(data) >= 12 and data[8:12] == b"WAVE" and data[:4] in (b"RIFF", b"RF64", b"BW64"):
        return "wav"
    if len(data) >= 12 and data[:4] == b"FORM" and data[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if data[:4] == b"OggS":
        return "ogg"
    start = _skip_id3v2(data)
    if data[start : start + 4] == b"fLaC":
        return "flac"
    if _mp3_find_stream(data, start, search=4096) is not None:
        return "mp3"
    return None


def _describe_unknown(data: bytes) -> AudioDecodeError:
    """An actionable error for content that is not one of our formats."""
    for offset, magic, what in _OTHER_AUDIO_SIGNATURES:
        if data[offset : offset + len(magic)] == magic:
            return _fail(
                "unsupported_format", f"This looks like {what}, which is not supported. {SUPPORTED_HINT}"
            )
    if len(data) >= 12 and data[:4] == b"RIFF":
        kind = data[8:12].decode("latin-1")
        what = {"AVI ": "an AVI video", "WEBP": "a WebP image"}.get(kind, f"a RIFF '{kind}' file")
        return _fail("not_audio", f"This file is not audio: it looks like {what}. {SUPPORTED_HINT}")
    if len(data) >= 2 and data[0] == 0xFF and (data[1] & 0xF6) == 0xF0:
        return _fail(
            "unsupported_format", f"This looks like raw AAC (ADTS), which is not supported. {SUPPORTED_HINT}"
        )
    for offset, magic, what in _NOT_AUDIO_SIGNATURES:
        if data[offset : offset + len(magic)] == magic:
            return _fail("not_audio", f"This file is not audio: it looks like {what}. {SUPPORTED_HINT}")
    # Undecodable bytes become U+FFFD, which is not printable: binary junk fails,
    # text cut mid-character passes.
    text = data[:4096].decode("utf-8", errors="replace")
    if text and sum(c.isprintable() or c in "\r\n\t" for c in text) >= 0.95 * len(text):
        lowered = text.lstrip().lower()
        if lowered.startswith(("<!doctype html", "<html")):
            what = "an HTML web page (a download may have saved an error page instead of the file)"
        elif lowered.startswith(("<?xml", "<")):
            what = "an XML/markup text file"
        elif lowered.startswith(("{", "[")):
            what = "a JSON text file"
        else:
            what = "a text file"
        return _fail("not_audio", f"This file is not audio: it looks like {what}. {SUPPORTED_HINT}")
    return _fail(
        "not_audio",
        f"This file is not a recognised audio file: its content matches none of the supported formats "
        f"(the file name's extension is not used). {SUPPORTED_HINT}",
    )


# --------------------------------------------------------------------------------------------------
# WAV
# --------------------------------------------------------------------------------------------------

_WAV_COMPRESSED = {0x0002: "MS_ADPCM", 0x0006: "ALAW", 0x0007: "ULAW", 0x0011: "IMA_ADPCM", 0x0031: "GSM610"}
_WAV_CODEC_NAMES = {
    0x0050: "MPEG audio",
    0x0055: "MP3",
    0x00FF: "AAC",
    0x0161: "WMA",
    0x2000: "AC-3",
    0x2001: "DTS",
    0xF1AC: "FLAC",
}


def _is_chunk_id(cid: bytes) -> bool:
    return len(cid) == 4 and all(32 <= b < 127 for b in cid)


def _check_rate_channels(fmt: str, sample_rate: float, channels: int, limits: AudioLimits) -> None:
    if channels <= 0:
        raise _fail("bad_channels", f"The {fmt} header declares {channels} channels; the file is corrupt.")
    if channels > limits.max_channels:
        raise _fail(
            "bad_channels",
            f"The {fmt} header declares {channels} channels; at most {limits.max_channels} are supported. "
            f"Mix it down to stereo before uploading.",
        )
    if not math.isfinite(sample_rate) or sample_rate <= 0:
        raise _fail(
            "bad_sample_rate", f"The {fmt} header declares an invalid sample rate ({sample_rate:g} Hz)."
        )
    if sample_rate < limits.min_sample_rate or sample_rate > limits.max_sample_rate:
        raise _fail(
            "bad_sample_rate",
            f"The {fmt} header declares a sample rate of {sample_rate:g} Hz; supported rates are "
            f"{limits.min_sample_rate}-{limits.max_sample_rate} Hz. "
            "Resample it (44.1 or 48 kHz) and upload again.",
        )


def _truncation_check(fmt: str, declared: int, held: int, sample_rate: int) -> None:
    if declared - held > max(1, int(_TRUNCATION_TOLERANCE_S * sample_rate)):
        raise _fail(
            "truncated",
            f"The file is truncated: the {fmt} header says {_fmt_s(declared / sample_rate)}, "
            f"the file holds {_fmt_s(held / sample_rate)}. Upload the complete file.",
        )


def _parse_wav(data: bytes, limits: AudioLimits) -> _Header:
    n = len(data)
    is_rf64 = data[:4] in (b"RF64", b"BW64")
    pos = 12
    fmt_body: bytes | None = None
    ds64_data_size: int | None = None
    data_off = data_size = None
    while pos + 8 <= n:
        cid = data[pos : pos + 4]
        (size,) = struct.unpack_from("<I", data, pos + 4)
        body = pos + 8
        if not _is_chunk_id(cid):
            raise _fail("corrupt", f"The WAV file is corrupt: invalid chunk at byte {pos}.")
        if cid == b"data":
            data_off, data_size = body, size
            break
        if body + size > n:
            raise _fail(
                "truncated",
                f"The file is truncated: WAV chunk '{cid.decode()}' at byte {pos} claims {size} bytes "
                f"but the file ends at byte {n}, before any audio data.",
            )
        if cid == b"fmt ":
            fmt_body = data[body : body + size]
        elif cid == b"ds64" and size >= 16:
            (ds64_data_size,) = struct.unpack_from("<Q", data, body + 8)
        pos = body + size + (size & 1)
    if fmt_body is None:
        if data_off is not None:
            raise _fail(
                "bad_header", "The WAV file has its audio data before its format chunk; it is corrupt."
            )
        raise _fail("truncated", "The file is truncated: the WAV file ends before its format chunk.")
    if data_off is None or data_size is None:
        raise _fail("truncated", "The file is truncated: the WAV file ends before its audio data chunk.")
    if len(fmt_body) < 16:
        raise _fail("bad_header", f"The WAV format chunk is {len(fmt_body)} bytes; it needs at least 16.")
    tag, channels, sample_rate, _avg, block_align, bits = struct.unpack_from("<HHIIHH", fmt_body, 0)
    channel_mask = None
    if tag == 0xFFFE:
        if len(fmt_body) < 40:
            raise _fail("bad_header", "The WAV extensible format chunk is too short; the file is corrupt.")
        (channel_mask,) = struct.unpack_from("<I", fmt_body, 20)
        (tag,) = struct.unpack_from("<H", fmt_body, 24)
    _check_rate_channels("WAV", sample_rate, channels, limits)

    if is_rf64 and data_size == 0xFFFFFFFF:
        if ds64_data_size is None:
            raise _fail("bad_header", "The RF64 file has no ds64 chunk giving its data size; it is corrupt.")
        data_size = ds64_data_size
    available = n - data_off
    if data_size == 0xFFFFFFFF:  # written by a streaming encoder that never came back to fill it in
        data_size = available

    if tag in (1, 3):
        valid = {1: {8: "PCM_U8", 16: "PCM_16", 24: "PCM_24", 32: "PCM_32"}, 3: {32: "FLOAT", 64: "DOUBLE"}}[
            tag
        ]
        if bits not in valid:
            raise _fail(
                "bad_header", f"The WAV header declares {bits}-bit samples, which is invalid for its codec."
            )
        need = channels * bits // 8
        if block_align != need:
            raise _fail(
                "bad_header",
                f"The WAV header contradicts itself: block align {block_align} bytes, "
                f"but {channels} channels "
                f"of {bits}-bit samples need {need}.",
            )
        declared = data_size // block_align
        held = min(data_size, available) // block_align
        _truncation_check("WAV", declared, held, sample_rate)
        return _Header(
            "wav",
            valid[bits],
            sample_rate,
            channels,
            declared,
            expect_frames=held,
            channel_mask=channel_mask,
            integer_pcm=tag == 1,
            float_pcm=tag == 3,
        )
    if tag in _WAV_COMPRESSED:
        if data_size > available:
            raise _fail(
                "truncated",
                f"The file is truncated: the WAV header promises {data_size} bytes of audio, "
                f"the file holds {available}.",
            )
        return _Header("wav", _WAV_COMPRESSED[tag], sample_rate, channels, None, channel_mask=channel_mask)
    name = _WAV_CODEC_NAMES.get(tag, "an unknown codec")
    raise _fail(
        "unsupported_codec",
        f"The WAV file holds {name} (format tag 0x{tag:04X}), which is not supported. "
        f"Export it as PCM WAV or FLAC.",
    )


# --------------------------------------------------------------------------------------------------
# AIFF
# --------------------------------------------------------------------------------------------------

_AIFC_PCM = {b"NONE": "be", b"twos": "be", b"sowt": "le", b"in24": "be", b"in32": "be"}
_AIFC_FLOAT = {b"fl32": "FLOAT", b"FL32": "FLOAT", b"fl64": "DOUBLE", b"FL64": "DOUBLE"}
_AIFC_COMPRESSED = {b"ulaw": "ULAW", b"ULAW": "ULAW", b"alaw": "ALAW", b"ALAW": "ALAW", b"ima4": "IMA_ADPCM"}


def _extended_to_float(raw: bytes) -> float:
    """IEEE 754 80-bit extended (AIFF's sample rate field)."""
    se, mant = struct.unpack(">HQ", raw)
    exponent = se & 0x7FFF
    if exponent == 0x7FFF:
        return math.nan
    if exponent == 0 and mant == 0:
        return 0.0
    sign = -1.0 if se & 0x8000 else 1.0
    try:
        return sign * math.ldexp(float(mant), exponent - 16383 - 63)
    except OverflowError:
        return math.inf


def _parse_aiff(data: bytes, limits: AudioLimits) -> _Header:
    n = len(data)
    is_aifc = data[8:12] == b"AIFC"
    pos = 12
    comm: bytes | None = None
    ssnd_off = ssnd_size = None
    while pos + 8 <= n:
        cid = data[pos : pos + 4]
        (size,) = struct.unpack_from(">I", data, pos + 4)
        body = pos + 8
        if not _is_chunk_id(cid):
            raise _fail("corrupt", f"The AIFF file is corrupt: invalid chunk at byte {pos}.")
        if cid == b"SSND":
            ssnd_off, ssnd_size = body, size
            if body + size > n or comm is not None:
                break  # the sound data runs to the end (or is truncated): nothing useful can follow
        elif body + size > n:
            raise _fail(
                "truncated",
                f"The file is truncated: AIFF chunk '{cid.decode()}' at byte {pos} claims {size} bytes "
                f"but the file ends at byte {n}.",
            )
        elif cid == b"COMM":
            comm = data[body : body + size]
        pos = body + size + (size & 1)
    if comm is None:
        raise _fail(
            "truncated", "The file is truncated or corrupt: the AIFF file has no COMM (format) chunk."
        )
    if len(comm) < 18 or (is_aifc and len(comm) < 22):
        raise _fail("bad_header", "The AIFF COMM chunk is too short; the file is corrupt.")
    channels, frames, bits = struct.unpack_from(">hIh", comm, 0)
    rate = _extended_to_float(comm[8:18])
    _check_rate_channels("AIFF", rate, channels, limits)
    if abs(rate - round(rate)) > 1e-6:
        raise _fail("bad_sample_rate", f"The AIFF header declares a non-integer sample rate ({rate:g} Hz).")
    sample_rate = round(rate)
    compression = comm[18:22] if is_aifc else b"NONE"

    if compression in _AIFC_COMPRESSED:
        return _Header("aiff", _AIFC_COMPRESSED[compression], sample_rate, channels, frames)
    if compression in _AIFC_FLOAT:
        subtype, width, is_float = (
            _AIFC_FLOAT[compression],
            (4 if _AIFC_FLOAT[compression] == "FLOAT" else 8),
            True,
        )
    elif compression in _AIFC_PCM:
        if not 1 <= bits <= 32:
            raise _fail("bad_header", f"The AIFF header declares {bits}-bit samples, which is invalid.")
        width = (bits + 7) // 8
        subtype = {1: "PCM_S8", 2: "PCM_16", 3: "PCM_24", 4: "PCM_32"}[width]
        is_float = False
    else:
        name = compression.decode("latin-1")
        raise _fail(
            "unsupported_codec",
            f"The AIFF-C file uses compression '{name}', which is not supported. "
            "Export it as plain AIFF or WAV.",
        )
    if ssnd_off is None or ssnd_size is None:
        if frames == 0:
            return _Header("aiff", subtype, sample_rate, channels, 0, expect_frames=0)
        raise _fail("truncated", "The file is truncated: the AIFF file ends before its sound data chunk.")
    if ssnd_size < 8 or ssnd_off + 8 > n:
        raise _fail("truncated", "The file is truncated: the AIFF sound data chunk is cut off.")
    (offset,) = struct.unpack_from(">I", data, ssnd_off)
    bytes_per_frame = channels * width
    audio_bytes = min(ssnd_size, n - ssnd_off) - 8 - offset
    held = max(0, audio_bytes) // bytes_per_frame
    _truncation_check("AIFF", frames, held, sample_rate)
    return _Header(
        "aiff",
        subtype,
        sample_rate,
        channels,
        frames,
        expect_frames=min(frames, held),
        integer_pcm=not is_float,
        float_pcm=is_float,
    )


# --------------------------------------------------------------------------------------------------
# FLAC
# --------------------------------------------------------------------------------------------------


def _parse_flac(data: bytes, limits: AudioLimits) -> _Header:
    n = len(data)
    pos = _skip_id3v2(data) + 4
    streaminfo: bytes | None = None
    first = True
    while True:
        if pos + 4 > n:
            raise _fail("truncated", "The file is truncated: the FLAC file ends inside its metadata.")
        block_type = data[pos] & 0x7F
        is_last = bool(data[pos] & 0x80)
        length = int.from_bytes(data[pos + 1 : pos + 4], "big")
        if block_type == 127:
            raise _fail("corrupt", f"The FLAC file is corrupt: invalid metadata block at byte {pos}.")
        if first and (block_type != 0 or length != 34):
            raise _fail(
                "bad_header", "The FLAC file does not start with a valid STREAMINFO block; it is corrupt."
            )
        if pos + 4 + length > n:
            raise _fail(
                "truncated",
                f"The file is truncated: a FLAC metadata block at byte {pos} claims {length} bytes but "
                f"the file ends at byte {n}.",
            )
        if first:
            streaminfo = data[pos + 4 : pos + 4 + 34]
        first = False
        pos += 4 + length
        if is_last:
            break
    assert streaminfo is not None
    packed = int.from_bytes(streaminfo[10:18], "big")
    sample_rate = packed >> 44
    channels = ((packed >> 41) & 0x7) + 1
    bps = ((packed >> 36) & 0x1F) + 1
    total = packed & ((1 << 36) - 1)
    md5 = streaminfo[18:34]
    _check_rate_channels("FLAC", sample_rate, channels, limits)
    if pos >= n:
        raise _fail("truncated", "The file is truncated: the FLAC file has metadata but no audio frames.")
    # Frame sync: 14 bits 11111111111110, then a reserved 0 bit.
    if pos + 2 > n or data[pos] != 0xFF or (data[pos + 1] & 0xFE) != 0xF8:
        raise _fail(
            "corrupt", f"The FLAC file is corrupt: no audio frame where the metadata ends (byte {pos})."
        )
    max_block = int.from_bytes(streaminfo[2:4], "big")
    _flac_check_end(data, pos, total, max_block, sample_rate)
    subtype = {8: "PCM_S8", 16: "PCM_16", 24: "PCM_24"}.get(bps, f"PCM_{bps}")
    return _Header(
        "flac",
        subtype,
        sample_rate,
        channels,
        total or None,
        expect_frames=total or None,
        expect_tolerance=0,
        flac_md5=md5 if any(md5) else None,
        flac_bps=bps,
    )


def _crc_table(poly: int, width: int) -> list[int]:
    top, mask = 1 << (width - 1), (1 << width) - 1
    table = []
    for byte in range(256):
        crc = byte << (width - 8)
        for _ in range(8):
            crc = ((crc << 1) ^ poly) & mask if crc & top else (crc << 1) & mask
        table.append(crc)
    return table


_CRC8 = _crc_table(0x07, 8)
_CRC16 = _crc_table(0x8005, 16)


def _crc8(buf: bytes) -> int:
    crc = 0
    for b in buf:
        crc = _CRC8[crc ^ b]
    return crc


def _crc16(buf: bytes) -> int:
    crc = 0
    for b in buf:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC16[(crc >> 8) ^ b]
    return crc


def _flac_frame_header(data: bytes, pos: int, max_block: int) -> tuple[int, int] | None:
    """(first sample, block size) of a FLAC frame header at ``pos`` whose CRC-8 checks out."""
    if pos + 6 > len(data) or data[pos] != 0xFF or (data[pos + 1] & 0xFE) != 0xF8:
        return None
    variable = data[pos + 1] & 1
    bs_code, sr_code = data[pos + 2] >> 4, data[pos + 2] & 0xF
    if bs_code == 0 or sr_code == 15 or data[pos + 3] & 1 or (data[pos + 3] >> 4) > 10:
        return None
    # UTF-8-style coded frame/sample number: the lead byte's leading ones count the bytes that follow.
    lead = data[pos + 4]
    if lead < 0x80:
        extra, number = 0, lead
    elif lead < 0xC0 or lead == 0xFF:
        return None
    else:
        extra, mask = 1, 0x20
        while extra < 6 and lead & mask:
            extra, mask = extra + 1, mask >> 1
        number = lead & (mask - 1) if extra < 6 else 0
    p = pos + 5
    if p + extra + 3 > len(data):
        return None
    for _ in range(extra):
        if data[p] & 0xC0 != 0x80:
            return None
        number = (number << 6) | (data[p] & 0x3F)
        p += 1
    if bs_code == 6:
        block, p = data[p] + 1, p + 1
    elif bs_code == 7:
        block, p = int.from_bytes(data[p : p + 2], "big") + 1, p + 2
    elif bs_code == 1:
        block = 192
    elif bs_code <= 5:
        block = 576 << (bs_code - 2)
    else:
        block = 256 << (bs_code - 8)
    p += {12: 1, 13: 2, 14: 2}.get(sr_code, 0)
    if p >= len(data) or _crc8(data[pos:p]) != data[p]:
        return None
    first_sample = number if variable else number * max_block
    return first_sample, block


def _flac_check_end(data: bytes, audio_start: int, total: int, max_block: int, sample_rate: int) -> None:
    """Find the last frame and check its CRC-16 closes the file: a cut file ends inside a frame."""
    end = len(data)
    if end - audio_start > 128 and data[end - 128 : end - 125] == b"TAG":
        end -= 128  # an ID3v1 tag some taggers append
    window_start = max(audio_start, end - (1 << 20))
    pos = end
    while True:
        pos = data.rfind(b"\xff", window_start, pos)
        if pos < 0:
            raise _fail("corrupt", "The FLAC file is corrupt: no valid audio frame found near its end.")
        frame = _flac_frame_header(data, pos, max_block)
        if frame is not None:
            break
    first_sample, block = frame
    if end - pos < 8 or _crc16(data[pos : end - 2]) != int.from_bytes(data[end - 2 : end], "big"):
        held = first_sample
        declared = f"the FLAC header says {_fmt_s(total / sample_rate)}, " if total else ""
        raise _fail(
            "truncated",
            f"The file is truncated: {declared}the file holds about {_fmt_s(held / sample_rate)} "
            f"and its last audio frame is cut off. Upload the complete file.",
        )
    _truncation_check("FLAC", total, first_sample + block, sample_rate)
    if total and first_sample > total:
        raise _fail(
            "bad_header",
            f"The FLAC file contradicts itself: its header says {_fmt_s(total / sample_rate)}, but its audio "
            f"frames run to {_fmt_s((first_sample + block) / sample_rate)}.",
        )


# --------------------------------------------------------------------------------------------------
# Ogg
# --------------------------------------------------------------------------------------------------

_BIT_REVERSE = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


def _bitrev32(value: int) -> int:
    return int(f"{value:032b}"[::-1], 2)


def _ogg_crc(page: bytes) -> int:
    """Ogg's CRC-32 (poly 0x04C11DB7, MSB first, init 0) computed by zlib on bit-reversed bytes."""
    return _bitrev32(zlib.crc32(page.translate(_BIT_REVERSE), 0xFFFFFFFF) ^ 0xFFFFFFFF)


def _scan_ogg(data: bytes, limits: AudioLimits) -> _Header:
    n = len(data)
    pos = 0
    serial: int | None = None
    expected_seq = 0
    last_granule = -1
    eos = False
    codec: str | None = None
    sample_rate = channels = 0
    pre_skip = 0
    while pos < n:
        if eos:
            if data[pos : pos + 4] == b"OggS":
                raise _fail(
                    "unsupported_format",
                    "The Ogg file holds several streams one after another (a chained Ogg); "
                    "export it as a single stream.",
                )
            break  # trailing tags/padding after the end of the stream: the audio is complete
        if n - pos < 27:
            raise _fail("truncated", f"The file is truncated: the last Ogg page (at byte {pos}) is cut off.")
        if data[pos : pos + 4] != b"OggS":
            raise _fail("corrupt", f"The Ogg file is corrupt: byte {pos} should start a page but does not.")
        version, flags, granule, page_serial, seq, crc, nsegs = struct.unpack_from("<BBqIIIB", data, pos + 4)
        header_len = 27 + nsegs
        if pos + header_len > n:
            raise _fail("truncated", f"The file is truncated: the last Ogg page (at byte {pos}) is cut off.")
        body_len = sum(data[pos + 27 : pos + header_len])
        end = pos + header_len + body_len
        if end > n:
            raise _fail("truncated", f"The file is truncated: the last Ogg page (at byte {pos}) is cut off.")
        if version != 0:
            raise _fail(
                "corrupt", f"The Ogg file is corrupt: page at byte {pos} has unknown version {version}."
            )
        page = bytearray(data[pos:end])
        page[22:26] = b"\0\0\0\0"
        if _ogg_crc(bytes(page)) != crc:
            where = (
                f" (about {_fmt_s(last_granule / sample_rate)} in)"
                if sample_rate and last_granule > 0
                else ""
            )
            raise _fail(
                "corrupt", f"The Ogg file is corrupt: the page at byte {pos}{where} fails its checksum."
            )
        if serial is None:
            if not flags & 0x02:
                raise _fail(
                    "corrupt", "The Ogg file is corrupt: its first page is not a beginning-of-stream page."
                )
            serial = page_serial
            codec, sample_rate, channels, pre_skip = _ogg_codec(data[pos + header_len : end], limits)
        elif page_serial != serial:
            raise _fail(
                "unsupported_format",
                "The Ogg file holds several interleaved streams (e.g. audio with video); upload audio only.",
            )
        if seq != expected_seq:
            raise _fail(
                "corrupt",
                f"The Ogg file is corrupt: pages are missing "
                f"(page {expected_seq} expected, {seq} found at byte {pos}).",
            )
        expected_seq += 1
        if granule != -1:
            if granule < last_granule:
                raise _fail("corrupt", f"The Ogg file is corrupt: its timeline goes backwards at byte {pos}.")
            last_granule = granule
            if (granule - pre_skip) / sample_rate > limits.max_duration_s:
                raise _too_long(limits, (granule - pre_skip) / sample_rate, at_least=True)
        eos = bool(flags & 0x04)
        pos = end
    held = max(0, last_granule - pre_skip)
    if not eos:
        raise _fail(
            "truncated",
            f"The file is truncated: the Ogg stream stops without its end-of-stream page after "
            f"{_fmt_s(held / sample_rate)}. Upload the complete file.",
        )
    assert codec is not None
    return _Header(
        "ogg",
        codec,
        sample_rate,
        channels,
        held,
        expect_frames=held,
        # Vorbis/Opus decoders trim partial blocks at the edges; half a 50 ms block either way is fine.
        expect_tolerance=int(0.05 * sample_rate),
    )


def _ogg_codec(packet: bytes, limits: AudioLimits) -> tuple[str, int, int, int]:
    if packet.startswith(b"\x01vorbis"):
        if len(packet) < 30:
            raise _fail("corrupt", "The Ogg Vorbis identification header is cut short; the file is corrupt.")
        version, channels, rate = struct.unpack_from("<IBI", packet, 7)
        if version != 0:
            raise _fail("bad_header", f"The Ogg Vorbis header declares unknown version {version}.")
        _check_rate_channels("Ogg Vorbis", rate, channels, limits)
        return "VORBIS", rate, channels, 0
    if packet.startswith(b"OpusHead"):
        if len(packet) < 19:
            raise _fail("corrupt", "The Ogg Opus identification header is cut short; the file is corrupt.")
        _version, channels, pre_skip, input_rate = struct.unpack_from("<BBHI", packet, 8)
        # Opus always decodes at 48 kHz; the input rate is informational but a 0/absurd one is a lie.
        if input_rate:
            _check_rate_channels("Ogg Opus", input_rate, channels, limits)
        _check_rate_channels("Ogg Opus", 48000, channels, limits)
        return "OPUS", 48000, channels, pre_skip
    names = {b"\x7fFLAC": "FLAC", b"Speex": "Speex", b"\x80theora": "Theora video", b"fishead": "Skeleton"}
    for magic, name in names.items():
        if packet.startswith(magic):
            raise _fail(
                "unsupported_codec",
                f"The Ogg file holds {name}, which is not supported; Ogg Vorbis and Ogg Opus are. "
                f"{SUPPORTED_HINT}",
            )
    raise _fail("unsupported_codec", f"The Ogg file holds an unknown codec. {SUPPORTED_HINT}")


# --------------------------------------------------------------------------------------------------
# MP3
# --------------------------------------------------------------------------------------------------

_MP3_BITRATES = {
    (1, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (1, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (1, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (2, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (2, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (2, 3): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MP3_RATES = {1: (44100, 48000, 32000), 2: (22050, 24000, 16000), 25: (11025, 12000, 8000)}


@dataclass(frozen=True)
class _Mp3Frame:
    version: int  # 1, 2 or 25 (MPEG 2.5)
    layer: int
    sample_rate: int
    channels: int
    length: int
    samples: int

    def same_stream(self, other: _Mp3Frame) -> bool:
        return (self.version, self.layer, self.sample_rate) == (other.version, other.layer, other.sample_rate)


def _mp3_frame(data: bytes, pos: int) -> _Mp3Frame | None:
    if pos + 4 > len(data):
        return None
    b0, b1, b2, b3 = data[pos], data[pos + 1], data[pos + 2], data[pos + 3]
    if b0 != 0xFF or (b1 & 0xE0) != 0xE0:
        return None
    version = {3: 1, 2: 2, 0: 25}.get((b1 >> 3) & 3)
    layer_bits = (b1 >> 1) & 3
    br_idx, sr_idx = b2 >> 4, (b2 >> 2) & 3
    # Reserved values; free-format bitrate (0) has no length we could check.
    if version is None or layer_bits == 0 or br_idx in (0, 15) or sr_idx == 3 or (b3 & 3) == 2:
        return None
    layer = 4 - layer_bits
    bitrate = _MP3_BITRATES[(1 if version == 1 else 2, layer)][br_idx] * 1000
    sample_rate = _MP3_RATES[version][sr_idx]
    pad = (b2 >> 1) & 1
    if layer == 1:
        length, samples = (12 * bitrate // sample_rate + pad) * 4, 384
    elif layer == 2 or version == 1:
        length, samples = 144 * bitrate // sample_rate + pad, 1152
    else:
        length, samples = 72 * bitrate // sample_rate + pad, 576
    channels = 1 if (b3 >> 6) == 3 else 2
    return _Mp3Frame(version, layer, sample_rate, channels, length, samples)


def _mp3_chain(data: bytes, pos: int, count: int = 3) -> _Mp3Frame | None:
    """The frame at ``pos`` if it and the next ``count - 1`` frames follow one another."""
    first = _mp3_frame(data, pos)
    if first is None:
        return None
    frame, p = first, pos
    for i in range(count - 1):
        p += frame.length
        # A very short or cut file: the chain reaches EOF; the walker judges whether it ends cleanly.
        if p == len(data) or (p > len(data) and i > 0):
            return first
        nxt = _mp3_frame(data, p)
        if nxt is None or not nxt.same_stream(first):
            return None
        frame = nxt
    return first


def _mp3_find_stream(data: bytes, start: int, search: int) -> tuple[int, _Mp3Frame] | None:
    end = min(len(data), start + search)
    pos = start
    while True:
        pos = data.find(b"\xff", pos, end)
        if pos < 0:
            return None
        frame = _mp3_chain(data, pos)
        if frame is not None:
            return pos, frame
        pos += 1


def _mp3_side_info_size(frame: _Mp3Frame) -> int:
    if frame.version == 1:
        return 17 if frame.channels == 1 else 32
    return 9 if frame.channels == 1 else 17


def _mp3_side_info_ok(data: bytes, pos: int, frame: _Mp3Frame) -> bool:
    """Layer III side info that no encoder writes (big_values over 288, a window-switched block of type
    0) marks a frame whose payload is garbage; decoders print an error and emit noise or silence."""
    if frame.layer != 3:
        return True
    start = pos + 4 + (0 if data[pos + 1] & 1 else 2)  # 16-bit CRC when the protection bit is 0
    mpeg1 = frame.version == 1
    size = _mp3_side_info_size(frame)
    if start + size > pos + frame.length or start + size > len(data):
        return False
    bits = int.from_bytes(data[start : start + size], "big")
    total = size * 8
    cursor = 0

    def take(n: int) -> int:
        nonlocal cursor
        cursor += n
        return (bits >> (total - cursor)) & ((1 << n) - 1)

    take(9 if mpeg1 else 8)  # main_data_begin
    take((5 if frame.channels == 1 else 3) if mpeg1 else (1 if frame.channels == 1 else 2))
    if mpeg1:
        take(4 * frame.channels)  # scfsi
    for _granule in range(2 if mpeg1 else 1):
        for _channel in range(frame.channels):
            take(12)  # part2_3_length
            if take(9) > 288:  # big_values
                return False
            take(8)  # global_gain
            take(4 if mpeg1 else 9)  # scalefac_compress
            if take(1):  # window switching
                if take(2) == 0:  # block_type 0 is reserved here
                    return False
                take(1 + 10 + 9)
            else:
                take(15 + 4 + 3)
            take(3 if mpeg1 else 2)
    return True


def _mp3_vbr_info(data: bytes, pos: int, frame: _Mp3Frame) -> tuple[int | None, int]:
    """(frames, encoder delay + padding) from a Xing/Info or VBRI header in the first frame."""
    side = _mp3_side_info_size(frame)
    tag_at = pos + 4 + side
    body = data[pos : pos + frame.length]
    tag = data[tag_at : tag_at + 4]
    if tag in (b"Xing", b"Info") and tag_at + 8 <= pos + len(body):
        (flags,) = struct.unpack_from(">I", data, tag_at + 4)
        p = tag_at + 8
        frames = None
        if flags & 1:
            (frames,) = struct.unpack_from(">I", data, p)
            p += 4
        p += 4 if flags & 2 else 0
        p += 100 if flags & 4 else 0
        p += 4 if flags & 8 else 0
        trim = 0
        # LAME extension: 3 bytes of 12-bit delay and padding, 21 bytes in.
        if p + 24 <= pos + frame.length and data[p : p + 4] in (b"LAME", b"Lavf", b"Lavc", b"GOGO"):
            raw = int.from_bytes(data[p + 21 : p + 24], "big")
            trim = (raw >> 12) + (raw & 0xFFF)
        return frames, trim
    vbri_at = pos + 4 + 32
    if data[vbri_at : vbri_at + 4] == b"VBRI" and vbri_at + 18 <= len(data):
        (frames,) = struct.unpack_from(">I", data, vbri_at + 14)
        return frames, 0
    return None, 0


def _mp3_skip_tag(data: bytes, pos: int) -> int:
    """Bytes of a tag (ID3v1, ID3v2, APE, Lyrics3) at ``pos``, 0 if none."""
    rest = len(data) - pos
    if data.startswith(b"TAG", pos) and rest in (128, 128 + 227):
        return rest
    if data.startswith(b"TAG+", pos) and rest == 128 + 227:
        return rest
    size = _id3v2_size(data, pos)
    if size:
        return size
    if data.startswith(b"APETAGEX", pos) and rest >= 32:
        (tag_size,) = struct.unpack_from("<I", data, pos + 12)
        (flags,) = struct.unpack_from("<I", data, pos + 20)
        is_header = bool(flags & (1 << 29))
        return 32 + tag_size if is_header else 32
    if data.startswith(b"LYRICSBEGIN", pos):
        end = data.find(b"LYRICS200", pos)
        if end < 0:
            end = data.find(b"LYRICSEND", pos)
        return end + 9 - pos if end >= 0 else rest
    return 0


def _scan_mp3(data: bytes, limits: AudioLimits) -> _Header:
    n = len(data)
    start = _skip_id3v2(data)
    found = _mp3_find_stream(data, start, search=4096)
    if found is None:
        raise _fail("corrupt", "The MP3 file is corrupt: no valid MPEG audio frames near its start.")
    pos, first = found
    _check_rate_channels("MP3", first.sample_rate, first.channels, limits)
    declared_frames, trim = _mp3_vbr_info(data, pos, first)
    has_vbr_header = declared_frames is not None or data[pos + 36 : pos + 40] == b"VBRI"
    junk = pos - start
    junk_budget = max(_MP3_JUNK_MIN, int(n * _MP3_JUNK_FRACTION))
    frames = damaged = 0
    samples_per_frame = first.samples
    max_frames = int(limits.max_duration_s * first.sample_rate / samples_per_frame) + 2
    if has_vbr_header:
        pos += first.length  # the Xing/Info/VBRI frame carries no audio
    while pos < n:
        frame = _mp3_frame(data, pos)
        if frame is not None and frame.same_stream(first):
            if pos + frame.length > n:
                held_s = frames * samples_per_frame / first.sample_rate
                declared = ""
                if declared_frames:
                    declared_frames = max(0, declared_frames * samples_per_frame - trim) // samples_per_frame
                    declared = (
                        f"the header says {_fmt_s(declared_frames * samples_per_frame / first.sample_rate)}, "
                    )
                raise _fail(
                    "truncated",
                    f"The file is truncated: {declared}the file holds {_fmt_s(held_s)} "
                    f"and its last MP3 frame "
                    f"is cut off. Upload the complete file.",
                )
            frames += 1
            if not _mp3_side_info_ok(data, pos, frame):
                damaged += 1
            if frames > max_frames:
                raise _too_long(limits, frames * samples_per_frame / first.sample_rate, at_least=True)
            pos += frame.length
            continue
        tag = _mp3_skip_tag(data, pos)
        if tag:
            pos += tag
            continue
        if n - pos < 4 and frames:
            raise _fail(
                "truncated", "The file is truncated: its last MP3 frame is cut off. Upload the complete file."
            )
        found = _mp3_find_stream(data, pos + 1, search=junk_budget - junk + 1)
        skipped = (found[0] if found else n) - pos
        junk += skipped
        if junk > junk_budget:
            at_s = frames * samples_per_frame / first.sample_rate
            raise _fail(
                "corrupt",
                f"The MP3 file is corrupt: {junk} bytes of non-audio data (from byte {pos}, about "
                f"{_fmt_s(at_s)} in).",
            )
        if found is None:
            break
        pos = found[0]
    if damaged > max(2, frames // 50):
        raise _fail(
            "corrupt",
            f"The MP3 file is corrupt: {damaged} of its {frames} audio frames hold invalid data "
            f"(decoders would play noise or silence there).",
        )
    if declared_frames is not None:
        _truncation_check(
            "MP3", declared_frames * samples_per_frame, frames * samples_per_frame, first.sample_rate
        )
    total = max(0, frames * samples_per_frame - trim)
    subtype = {1: "MPEG_LAYER_I", 2: "MPEG_LAYER_II", 3: "MPEG_LAYER_III"}[first.layer]
    return _Header(
        "mp3",
        subtype,
        first.sample_rate,
        first.channels,
        total,
        expect_frames=total,
        # mpg123 may drop a frame or two at the edges (decoder delay, bit reservoir).
        expect_tolerance=3 * samples_per_frame + 1105,
    )


# --------------------------------------------------------------------------------------------------
# Probe and decode
# --------------------------------------------------------------------------------------------------

_PARSERS: dict[str, Callable[[bytes, AudioLimits], _Header]] = {
    "wav": _parse_wav,
    "aiff": _parse_aiff,
    "flac": _parse_flac,
    "ogg": _scan_ogg,
    "mp3": _scan_mp3,
}


def _too_long(limits: AudioLimits, seconds: float, *, at_least: bool = False) -> AudioDecodeError:
    size = f"at least {_fmt_s(seconds)}" if at_least else _fmt_s(seconds)
    return _fail(
        "too_long",
        f"The audio is too long: {size}; the limit is {_fmt_s(limits.max_duration_s)}. "
        "Trim it and upload again.",
    )


def _too_short(limits: AudioLimits, seconds: float) -> AudioDecodeError:
    return _fail(
        "too_short",
        f"The audio is too short: {_fmt_s(seconds)}; it must last at least {_fmt_s(limits.min_duration_s)}.",
    )


def _probe_header(data: bytes, limits: AudioLimits) -> _Header:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) == 0:
        raise _fail("empty", "The file is empty (0 bytes). Upload it again; the transfer may have failed.")
    if len(data) > limits.max_bytes:
        raise _fail(
            "too_large",
            f"The file is {_fmt_bytes(len(data))}; the limit is {_fmt_bytes(limits.max_bytes)}. "
            f"Upload a shorter or compressed (FLAC, MP3) file.",
        )
    fmt = sniff_format(data)
    if fmt is None:
        raise _describe_unknown(data)
    header = _PARSERS[fmt](data, limits)
    if header.frames is not None:
        seconds = header.frames / header.sample_rate
        if seconds > limits.max_duration_s:
            raise _too_long(limits, seconds)
        if seconds < limits.min_duration_s:
            raise _too_short(limits, seconds)
    return header


def _info(header: _Header, frames: int) -> AudioInfo:
    return AudioInfo(
        format=header.format,
        subtype=header.subtype,
        sample_rate=header.sample_rate,
        channels=header.channels,
        frames=frames,
        duration_s=frames / header.sample_rate,
        channel_mask=header.channel_mask,
    )


def probe(data: bytes, limits: AudioLimits) -> AudioInfo:
    """Header-level checks, no decoding: format, rate, channels, declared length, truncation of PCM files,
    Ogg page checksums and MP3 frame structure. ``frames`` is the declared length (0 where only decoding
    can tell, e.g. compressed WAV). Raises AudioDecodeError."""
    header = _probe_header(data, limits)
    return _info(header, header.frames or 0)


_SF_FORMATS = {
    "WAV": "wav",
    "WAVEX": "wav",
    "RF64": "wav",
    "AIFF": "aiff",
    "FLAC": "flac",
    "OGG": "ogg",
    "MP3": "mp3",
}


def _libsndfile_message(exc: Exception) -> str:
    text = str(exc)
    # soundfile prefixes "Error opening <_io.BytesIO object at 0x...>: "; keep libsndfile's own words.
    return text.split(": ", 1)[-1].strip() if text.startswith("Error opening") else text.strip()


class _SequentialSoundFile(sf.SoundFile):  # type: ignore[misc]  # soundfile has no type hints
    """soundfile tells and seeks around every read to track its position. We only read forward, and
    that seek fails at the end of a FLAC stream whose header leaves its length unknown ("Internal
    psf_fseek() failed"); it also costs a fifth of FLAC decoding time."""

    def seekable(self) -> bool:
        return False


def decode_audio(data: bytes, limits: AudioLimits) -> DecodedAudio:
    """Full decode with integrity checks. Returns float32 samples shaped (frames, channels) at the file's
    own rate. Memory is bounded by the limits, not by what the header claims. Raises AudioDecodeError."""
    header = _probe_header(data, limits)
    data = bytes(data)
    sr, channels = header.sample_rate, header.channels
    try:
        handle = _SequentialSoundFile(io.BytesIO(data))
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise _fail(
            "corrupt",
            f"The {header.format.upper()} file is corrupt and cannot be opened ({_libsndfile_message(exc)}).",
        ) from exc
    with handle as f:
        if _SF_FORMATS.get(f.format) != header.format or f.samplerate != sr or f.channels != channels:
            raise _fail(
                "bad_header",
                f"The {header.format.upper()} file contradicts itself: its header says {sr} Hz, {channels} "
                f"channels, but the decoder sees {f.format} at {f.samplerate} Hz, {f.channels} channels.",
            )
        out, pos, md5 = _read_blocks(f, header, limits)
    _check_decoded_length(header, pos, limits)
    if md5 is not None and header.flac_md5 is not None and md5.digest() != header.flac_md5:
        raise _fail(
            "corrupt",
            "The FLAC file is corrupt: the decoded audio does not match the checksum stored in its header.",
        )
    samples = out[:pos]
    if out.shape[0] - pos > max(1024, pos // 16):
        samples = samples.copy()  # don't pin a mostly empty buffer
    if header.integer_pcm:
        _check_not_random(samples, header)
    return DecodedAudio(samples=samples, sample_rate=sr, info=_info(header, pos))


def _read_blocks(f: sf.SoundFile, header: _Header, limits: AudioLimits) -> tuple[np.ndarray, int, Any]:
    """Decode into one buffer sized from the header, growing only if the header under-reported, and
    never past max_duration_s + 1 frame: that is the memory bound. Returns (buffer, frames, flac md5)."""
    sr, channels = header.sample_rate, header.channels
    max_frames = int(limits.max_duration_s * sr)
    hint = header.frames if header.frames else (f.frames if 0 < f.frames < (1 << 40) else sr * 60)
    out = np.empty((max(1, min(max_frames + 1, hint + 1)), channels), dtype=np.float32)
    md5 = hashlib.md5(usedforsecurity=False) if header.flac_md5 is not None else None
    block_frames = _BLOCK_FRAMES
    int_block = np.empty((block_frames, channels), dtype=np.int32) if md5 is not None else None
    max_abs = _MAX_PLAUSIBLE_FLOAT if header.float_pcm else _MAX_PLAUSIBLE_LOSSY
    check_values = header.float_pcm or header.format in ("ogg", "mp3")
    pos = 0
    while True:
        if pos == out.shape[0]:
            grown = np.empty((min(max_frames + 1, 2 * pos), channels), dtype=np.float32)
            grown[:pos] = out
            out = grown
        want = min(block_frames, out.shape[0] - pos)
        try:
            if int_block is not None:
                got = f.read(want, dtype="int32", always_2d=True, out=int_block[:want])
                k = got.shape[0]
                _flac_md5_update(md5, got, header.flac_bps)
                np.multiply(got, np.float32(1.0 / 2147483648.0), out=out[pos : pos + k], casting="unsafe")
            else:
                k = f.read(want, dtype="float32", always_2d=True, out=out[pos : pos + want]).shape[0]
        except (sf.LibsndfileError, RuntimeError) as exc:
            declared = f" of the {_fmt_s(header.frames / sr)} the header declares" if header.frames else ""
            raise _fail(
                "corrupt",
                f"The {header.format.upper()} file is corrupt: decoding failed after "
                f"{_fmt_s(pos / sr)}{declared} ({_libsndfile_message(exc)}).",
            ) from exc
        if k == 0:
            return out, pos, md5
        if check_values:
            _check_finite(out[pos : pos + k], pos, sr, max_abs)
        pos += k
        if pos > max_frames:
            raise _too_long(limits, pos / sr, at_least=True)


def _flac_md5_update(md5: Any, block: np.ndarray, bps: int) -> None:
    """FLAC's MD5 is over little-endian signed samples of ceil(bps/8) bytes, interleaved."""
    width = (bps + 7) // 8
    shifted = np.ascontiguousarray(block >> (32 - bps), dtype="<i4")
    if width == 4:
        md5.update(shifted.tobytes())
        return
    # The low `width` bytes of each little-endian int32, without a 2-D strided copy.
    raw = np.ndarray(shape=(shifted.size,), dtype=f"V{width}", buffer=shifted.view(np.uint8), strides=(4,))
    md5.update(raw.tobytes())


def _check_finite(block: np.ndarray, offset: int, sr: int, max_abs: float) -> None:
    magnitude = np.abs(block)
    if np.isfinite(block).all() and not (magnitude > max_abs).any():
        return
    bad = ~np.isfinite(block)
    if bad.any():
        index = int(np.argmax(bad.any(axis=1)))
        value = block[index][bad[index]][0]
        kind = "NaN" if np.isnan(value) else "infinite"
        raise _fail(
            "non_finite",
            f"The audio contains {kind} sample values (first at {_fmt_s((offset + index) / sr)}); "
            f"the file is corrupt. Re-export it as PCM or check the floating-point export.",
        )
    index = int(np.argmax((magnitude > max_abs).any(axis=1)))
    db = 20 * math.log10(max_abs)
    raise _fail(
        "corrupt",
        f"The audio contains implausible sample values (|x| = {float(magnitude[index].max()):.3g}, more "
        f"than {db:.0f} dB over full scale, at {_fmt_s((offset + index) / sr)}): the data is corrupt or "
        f"not audio.",
    )


def _check_decoded_length(header: _Header, frames: int, limits: AudioLimits) -> None:
    sr = header.sample_rate
    expect = header.expect_frames
    if expect is not None:
        tolerance = max(header.expect_tolerance, int(_TRUNCATION_TOLERANCE_S * sr), 1)
        if frames < expect - tolerance:
            if header.format == "flac":
                raise _fail(
                    "truncated",
                    f"The file is truncated: the FLAC header says {_fmt_s(expect / sr)}, "
                    f"the file holds {_fmt_s(frames / sr)}. Upload the complete file.",
                )
            raise _fail(
                "corrupt",
                f"The {header.format.upper()} file is corrupt: only {_fmt_s(frames / sr)} of its "
                f"{_fmt_s(expect / sr)} could be decoded.",
            )
        if header.format in ("wav", "aiff", "flac") and frames > expect + tolerance:
            raise _fail(
                "bad_header",
                f"The {header.format.upper()} file contradicts itself: "
                f"its header says {_fmt_s(expect / sr)}, "
                f"but {_fmt_s(frames / sr)} were decoded.",
            )
    if frames == 0:
        raise _fail("too_short", "The file contains no audio samples (0 s).")
    if frames / sr < limits.min_duration_s:
        raise _too_short(limits, frames / sr)


def _check_not_random(samples: np.ndarray, header: _Header) -> None:
    """Random bytes behind a valid PCM header decode as full-scale uniform white noise; recorded or
    synthesised audio is never uniform over the whole range with no sample-to-sample correlation."""
    step = max(1, samples.shape[0] // 262_144)
    x = samples[::step].astype(np.float64)
    if x.shape[0] < 16384:
        return
    for ch in range(x.shape[1]):
        col = x[:, ch]
        hist, _ = np.histogram(col, bins=16, range=(-1.0, 1.0))
        expected = col.shape[0] / 16
        if np.abs(hist - expected).max() > 0.1 * expected:
            return
        centred = col - col.mean()
        denom = float(np.dot(centred, centred))
        if denom == 0 or abs(float(np.dot(centred[1:], centred[:-1])) / denom) > 0.05:
            return
    raise _fail(
        "corrupt",
        f"The {header.format.upper()} audio data looks like random bytes (uniform full-scale noise with no "
        f"structure): the file is corrupt or is not audio. If you meant to upload noise, lower its level "
        f"below full scale and upload again.",
    )


# --------------------------------------------------------------------------------------------------
# Normalise
# --------------------------------------------------------------------------------------------------

# Left/right gains per speaker position (ITU-R BS.775 style downmix; LFE dropped).
_G = 1.0 / math.sqrt(2.0)
_POSITION_GAINS: dict[str, tuple[float, float]] = {
    "FL": (1.0, 0.0),
    "FR": (0.0, 1.0),
    "FC": (_G, _G),
    "LFE": (0.0, 0.0),
    "BL": (_G, 0.0),
    "BR": (0.0, _G),
    "FLC": (1.0, 0.0),
    "FRC": (0.0, 1.0),
    "BC": (0.5, 0.5),
    "SL": (_G, 0.0),
    "SR": (0.0, _G),
    "TC": (0.5, 0.5),
    "TFL": (_G, 0.0),
    "TFC": (0.5, 0.5),
    "TFR": (0.0, _G),
    "TBL": (_G, 0.0),
    "TBC": (0.5, 0.5),
    "TBR": (0.0, _G),
}
# WAVE_FORMAT_EXTENSIBLE mask bit order.
_MASK_POSITIONS = (
    *("FL", "FR", "FC", "LFE", "BL", "BR", "FLC", "FRC", "BC", "SL", "SR"),
    *("TC", "TFL", "TFC", "TFR", "TBL", "TBC", "TBR"),
)
# Default orders: WAV/FLAC/AIFF (SMPTE) and Vorbis/Opus.
_DEFAULT_ORDER: dict[int, tuple[str, ...]] = {
    3: ("FL", "FR", "FC"),
    4: ("FL", "FR", "BL", "BR"),
    5: ("FL", "FR", "FC", "BL", "BR"),
    6: ("FL", "FR", "FC", "LFE", "BL", "BR"),
    7: ("FL", "FR", "FC", "LFE", "BC", "SL", "SR"),
    8: ("FL", "FR", "FC", "LFE", "BL", "BR", "SL", "SR"),
}
_VORBIS_ORDER: dict[int, tuple[str, ...]] = {
    3: ("FL", "FC", "FR"),
    4: ("FL", "FR", "BL", "BR"),
    5: ("FL", "FC", "FR", "BL", "BR"),
    6: ("FL", "FC", "FR", "BL", "BR", "LFE"),
    7: ("FL", "FC", "FR", "SL", "SR", "BC", "LFE"),
    8: ("FL", "FC", "FR", "SL", "SR", "BL", "BR", "LFE"),
}


def _channel_positions(info: AudioInfo) -> list[str]:
    n = info.channels
    if info.channel_mask:
        from_mask = [name for bit, name in enumerate(_MASK_POSITIONS) if info.channel_mask & (1 << bit)]
        if len(from_mask) == n:
            return from_mask
    table = _VORBIS_ORDER if info.format == "ogg" else _DEFAULT_ORDER
    if n in table:
        return list(table[n])
    # Unknown layout: alternate channels left and right.
    return ["SL" if i % 2 == 0 else "SR" for i in range(n)]


def downmix_matrix(info: AudioInfo) -> np.ndarray:
    """(channels, 2) gains that fold the file's channels to stereo."""
    if info.channels == 1:
        return np.array([[1.0, 1.0]], dtype=np.float32)
    if info.channels == 2:
        return np.eye(2, dtype=np.float32)
    return np.array([_POSITION_GAINS[p] for p in _channel_positions(info)], dtype=np.float32)


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


def normalise(decoded: DecodedAudio, target_sr: int = 44100) -> np.ndarray:
    """(frames, 2) float32 at ``target_sr``: mono is duplicated, more channels are folded down by speaker
    position, then resampled. If the result would clip (downmix sums, resampling overshoot, hot float
    files) the whole signal is scaled to peak at full scale rather than clipped."""
    x = decoded.samples
    if x.ndim != 2 or x.shape[1] != decoded.info.channels:
        raise ValueError(f"samples must be (frames, {decoded.info.channels}), got {x.shape}")
    if x.shape[1] == 2:
        stereo = np.ascontiguousarray(x, dtype=np.float32)
    elif x.shape[1] == 1:
        stereo = np.repeat(x.astype(np.float32, copy=False), 2, axis=1)
    else:
        stereo = (x.astype(np.float32, copy=False) @ downmix_matrix(decoded.info)).astype(
            np.float32, copy=False
        )
    out = resample(stereo, decoded.sample_rate, target_sr)
    out = np.ascontiguousarray(out, dtype=np.float32)
    # Always hand back a fresh array (callers may modify it); work in place once we own one.
    if np.shares_memory(out, x):
        out = out.copy()
    peak = float(np.abs(out).max()) if out.size else 0.0
    if peak > 1.0:
        out *= np.float32(1.0 / peak)
    np.clip(out, -1.0, 1.0, out=out)
    return out


# --------------------------------------------------------------------------------------------------
# Encode and hash
# --------------------------------------------------------------------------------------------------

_ENCODINGS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    # fmt: (libsndfile format, default subtype, allowed subtypes)
    "wav": ("WAV", "PCM_16", ("PCM_16", "PCM_24", "PCM_32", "FLOAT")),
    "flac": ("FLAC", "PCM_24", ("PCM_16", "PCM_24")),
    "mp3": ("MP3", "MPEG_LAYER_III", ("MPEG_LAYER_III",)),
    "ogg": ("OGG", "VORBIS", ("VORBIS", "OPUS")),
    "aiff": ("AIFF", "PCM_16", ("PCM_16", "PCM_24", "FLOAT")),
}
_ENCODE_BLOCK_FRAMES = 1 << 14
_MP3_RATES_OUT = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)


def encode_audio(samples: np.ndarray, sample_rate: int, fmt: str, subtype: str | None = None) -> bytes:
    """Encode (frames,) or (frames, channels) float samples in [-1, 1]. wav: PCM_16 (default) or FLOAT;
    flac: PCM_24; mp3: 320 kbit/s CBR; ogg: Vorbis. Integer and lossy outputs are clipped to full scale
    (libsndfile would wrap around instead)."""
    if fmt not in _ENCODINGS:
        raise ValueError(f"unknown output format {fmt!r}; choose one of {sorted(_ENCODINGS)}")
    sf_format, default_subtype, allowed = _ENCODINGS[fmt]
    subtype = subtype or default_subtype
    if subtype not in allowed:
        raise ValueError(f"{fmt} cannot be written as {subtype}; choose one of {allowed}")
    x = np.asarray(samples)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(f"samples must be (frames,) or (frames, channels), got {np.shape(samples)}")
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"samples must be floating point, got {x.dtype}")
    if not np.isfinite(x).all():
        raise ValueError("samples contain NaN or infinity")
    if fmt == "mp3" and (x.shape[1] > 2 or sample_rate not in _MP3_RATES_OUT):
        raise ValueError(f"mp3 takes 1-2 channels at {_MP3_RATES_OUT} Hz; got {x.shape[1]} at {sample_rate}")
    if fmt == "ogg" and subtype == "OPUS" and sample_rate not in (8000, 12000, 16000, 24000, 48000):
        raise ValueError("Opus takes 8, 12, 16, 24 or 48 kHz")
    if subtype not in ("FLOAT",):
        x = np.clip(x, -1.0, 1.0)
    x = np.ascontiguousarray(x, dtype=np.float32)
    kwargs: dict[str, Any] = {}
    if fmt == "mp3":
        kwargs = {"bitrate_mode": "CONSTANT", "compression_level": 0.0}
    elif fmt == "ogg" and subtype == "VORBIS":
        kwargs = {"compression_level": 0.3}
    buf = io.BytesIO()
    with sf.SoundFile(buf, "w", sample_rate, x.shape[1], subtype, format=sf_format, **kwargs) as f:
        # In blocks: libvorbis alloca()s the whole pending buffer, so one big write overflows the stack
        # and kills the process (libsndfile#1095, python-soundfile#426).
        for start in range(0, x.shape[0], _ENCODE_BLOCK_FRAMES):
            f.write(x[start : start + _ENCODE_BLOCK_FRAMES])
    return buf.getvalue()


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
