"""The error every rejected upload raises, and the integrity checks FFmpeg does not make.

FFmpeg (see :mod:`audiomixer.dsp.audio_io`) reads the containers and catches what its error detection
sees. It is silent about a few things an upload service must refuse: a WAV whose data chunk is cut
short (it clamps the size to the bytes present) or whose fmt chunk lies, an Ogg stream cut at a page
boundary, a FLAC whose MD5 does not match, random bytes behind a valid PCM header, NaN in float samples;
and it does not say what a file that is not audio is instead. Those checks live here.

Every rejection is an :class:`AudioDecodeError` with a ``code`` for machines and a ``reason`` a person
can act on. Codes and the HTTP status they suggest:

=====================  =====  ============================================================
code                   HTTP   meaning
=====================  =====  ============================================================
``empty``              422    zero bytes
``too_large``          413    more bytes than ``max_bytes``
``not_audio``          415    not an audio file at all (image, archive, text, ...)
``unsupported_codec``  415    a container holding a codec FFmpeg cannot decode
``truncated``          422    the file ends before the audio its header promises
``corrupt``            422    damaged data: bad checksum, lost sync, garbage, random bytes
``bad_header``         422    the header contradicts itself
``bad_sample_rate``    422    sample rate 0, absurd or outside the limits
``bad_channels``       422    0 channels or more than ``max_channels``
``too_long``           422    longer than ``max_duration_s``, or more samples than ``max_samples``
``too_short``          422    shorter than ``min_duration_s``
``non_finite``         422    NaN or infinity in floating-point samples
=====================  =====  ============================================================
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np

SUPPORTED_HINT = (
    "Upload an audio file: WAV, AIFF, FLAC, MP3, M4A (AAC or ALAC), Ogg (Vorbis or Opus), WebM or WMA."
)

ERROR_HTTP_STATUS: dict[str, int] = {
    "empty": 422,
    "too_large": 413,
    "not_audio": 415,
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
TRUNCATION_TOLERANCE_S = 0.001
# Float samples above this (+60 dBFS) are not audio anyone recorded: random bytes read as floats.
MAX_PLAUSIBLE_FLOAT = 1000.0
# Lossy decoders overshoot full scale a little on hot masters; far beyond is a frame of garbage decoded.
MAX_PLAUSIBLE_LOSSY = 16.0


class AudioDecodeError(ValueError):
    """An upload that cannot be used. ``reason`` is for people, ``code`` for machines."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason

    @property
    def http_status(self) -> int:
        return ERROR_HTTP_STATUS.get(self.code, 422)


def fail(code: str, reason: str) -> AudioDecodeError:
    return AudioDecodeError(code, reason)


def fmt_bytes(n: float) -> str:
    for unit in ("bytes", "KB", "MB"):
        if n < 1000 or unit == "MB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def fmt_s(seconds: float) -> str:
    if seconds >= 100:
        return f"{seconds:.0f} s"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    return f"{seconds:.3f} s"


# --------------------------------------------------------------------------------------------------
# Content that is not audio, and the checks FFmpeg does not make
# --------------------------------------------------------------------------------------------------

_NOT_AUDIO_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (or a document built on ZIP, such as .docx)"),
    (b"PK\x05\x06", "an empty ZIP archive"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"BZh", "a bzip2 archive"),
    (b"\xfd7zXZ\x00", "an xz archive"),
    (b"\x7fELF", "an executable program"),
    (b"MZ", "a Windows executable"),
    (b"MThd", "a MIDI file (notes, not recorded sound; render it to audio first)"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"BM", "a BMP image"),
)


def not_audio(data: bytes) -> AudioDecodeError | None:
    """What a file FFmpeg found no audio in is instead, when its content says so."""
    what = next((w for magic, w in _NOT_AUDIO_SIGNATURES if data.startswith(magic)), None)
    if what is None and len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] != b"WAVE":
        kind = data[8:12].decode("latin-1")
        what = {"AVI ": "an AVI video", "WEBP": "a WebP image"}.get(kind, f"a RIFF '{kind}' file")
    # Undecodable bytes become U+FFFD, which is not printable: binary junk fails, text cut mid-character
    # passes.
    text = data[:4096].decode("utf-8", errors="replace")
    if what is None and text and sum(c.isprintable() or c in "\r\n\t" for c in text) >= 0.95 * len(text):
        lowered = text.lstrip().lower()
        if lowered.startswith(("<!doctype html", "<html")):
            what = "an HTML web page (a download may have saved an error page instead of the file)"
        elif lowered.startswith(("<?xml", "<")):
            what = "an XML/markup text file"
        elif lowered.startswith(("{", "[")):
            what = "a JSON text file"
        else:
            what = "a text file"
    if what is None:
        return None
    return fail("not_audio", f"This file is not audio: it looks like {what}. {SUPPORTED_HINT}")


def unrecognised() -> AudioDecodeError:
    return fail(
        "not_audio",
        "This file is not a recognised audio file: FFmpeg finds no audio in its content (the file name's "
        f"extension is not used). {SUPPORTED_HINT}",
    )


def check_wav(data: bytes, max_channels: int) -> None:
    """FFmpeg clamps a WAV's data chunk to the bytes present (a truncated file reads as a shorter one)
    and trusts its fmt chunk: walk the chunks for what it lets through."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return
    pos, fmt = 12, None
    while pos + 8 <= len(data):
        cid = data[pos : pos + 4]
        (size,) = struct.unpack_from("<I", data, pos + 4)
        if not all(32 <= b < 127 for b in cid):
            raise fail("corrupt", f"The WAV file is corrupt: the chunk at byte {pos} has no valid chunk id.")
        if cid == b"fmt " and size >= 16 and pos + 24 <= len(data):
            fmt = struct.unpack_from("<HHIIHH", data, pos + 8)
        if cid == b"data":
            break
        pos += 8 + size + (size & 1)
    else:
        if pos > len(data):
            raise fail("truncated", "The file is truncated: a WAV chunk runs past the end of the file.")
        raise fail("truncated", "The WAV file has no data chunk: it is truncated or holds no audio.")
    if fmt is None:
        return
    tag, channels, sample_rate, _, block_align, bits = fmt
    if tag in (1, 3, 0xFFFE) and 0 < channels <= max_channels:
        if bits == 0 or bits % 8 or bits > 64:
            raise fail("bad_header", f"The WAV header declares {bits} bits per sample; the file is corrupt.")
        if block_align != channels * bits // 8:
            raise fail(
                "bad_header",
                f"The WAV header contradicts itself: block align {block_align} for {channels} channels of "
                f"{bits} bits (expected {channels * bits // 8}); the file is corrupt.",
            )
        declared, held = size // block_align, (len(data) - pos - 8) // block_align
        # Streaming writers leave the size 0 or 0xFFFFFFFF: read to the end.
        short = declared - held > max(1, int(TRUNCATION_TOLERANCE_S * sample_rate))
        if size not in (0, 0xFFFFFFFF) and sample_rate > 0 and short:
            raise truncated("WAV", declared / sample_rate, held / sample_rate)


def check_ogg_end(data: bytes) -> None:
    """FFmpeg reads an Ogg stream cut at a page boundary as a shorter one: the last page must be whole
    and carry the end-of-stream flag."""
    if data[:4] != b"OggS":
        return
    last = data.rfind(b"OggS", max(0, len(data) - 65_307))
    segments = data[last + 27 : last + 27 + data[last + 26]] if last + 27 <= len(data) else b""
    whole = last + 27 + len(segments) + sum(segments) == len(data) and len(segments) == data[last + 26]
    if not whole or not data[last + 5] & 0x04:
        raise fail(
            "truncated",
            "The file is truncated: the Ogg stream ends without its final page. Upload the complete file.",
        )


_ASF_HEADER = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")
_ASF_FILE_PROPERTIES = bytes.fromhex("a1dcab8c47a9cf118ee400c00c205365")
_ASF_DATA = bytes.fromhex("3626b2758e66cf11a6d900aa0062ce6c")


def check_asf(data: bytes) -> None:
    """FFmpeg estimates a WMA/ASF file's length from its size, so one cut at a packet boundary reads as a
    shorter file: compare the packets its File Properties object counts with those present."""
    if not data.startswith(_ASF_HEADER) or len(data) < 30:
        return
    pos, end = 30, min(len(data), struct.unpack_from("<Q", data, 16)[0])
    props = None
    while pos + 24 <= end:
        guid, size = data[pos : pos + 16], struct.unpack_from("<Q", data, pos + 16)[0]
        if guid == _ASF_FILE_PROPERTIES and pos + 104 <= len(data):
            props = struct.unpack_from("<QQQQIII", data, pos + 56)  # packets, play, send, preroll, flags...
        if size < 24:
            return
        pos += size
    data_start = data.find(_ASF_DATA, pos)
    if props is None or data_start < 0:
        return
    packets, play_100ns, _, preroll_ms, flags, packet_size, max_size = props
    if flags & 1 or packet_size == 0 or packet_size != max_size:  # broadcast, or variable packets
        return
    held = (len(data) - data_start - 50) // packet_size
    if held < packets:
        seconds = max(0.0, play_100ns / 1e7 - preroll_ms / 1e3)
        raise truncated("WMA/ASF", seconds, seconds * held / packets)


def check_length(frames: int, cap: int, sr: int, channels: int, limits: Any, at_least: bool = False) -> None:
    """Refuse a length over ``limits.max_duration_s`` or over ``limits.max_samples`` (the memory bound, as
    ``cap`` frames), or under ``limits.min_duration_s``; ``at_least``: decoding is still going on."""
    seconds = frames / sr
    size = f"at least {fmt_s(seconds)}" if at_least else fmt_s(seconds)
    if seconds > limits.max_duration_s:
        raise fail(
            "too_long",
            f"The audio is too long: {size}; the limit is {fmt_s(limits.max_duration_s)}. Trim it and upload "
            "again.",
        )
    if frames > cap:
        raise fail(
            "too_long",
            f"The audio is too big to decode: {size} of {channels} channels at {sr} Hz is more than "
            f"{limits.max_samples / 1e6:.3g} million samples. Mix it down to stereo, resample it to 48 kHz "
            "or trim it, and upload again.",
        )
    if not at_least and seconds < limits.min_duration_s:
        raise fail(
            "too_short",
            f"The audio is too short: {fmt_s(seconds)}; it must last at least "
            f"{fmt_s(limits.min_duration_s)}.",
        )


def truncated(what: str, declared_s: float, held_s: float) -> AudioDecodeError:
    return fail(
        "truncated",
        f"The file is truncated: the {what} header says {fmt_s(declared_s)}, the file holds "
        f"{fmt_s(held_s)}. Upload the complete file.",
    )


def flac_md5_update(md5: Any, block: np.ndarray, bps: int) -> None:
    """FLAC's MD5 is over little-endian signed samples of ceil(bps/8) bytes, interleaved."""
    width = (bps + 7) // 8
    shifted = np.ascontiguousarray(block >> (32 - bps), dtype="<i4")
    if width == 4:
        md5.update(shifted.tobytes())
        return
    # The low `width` bytes of each little-endian int32, without a 2-D strided copy.
    raw = np.ndarray(shape=(shifted.size,), dtype=f"V{width}", buffer=shifted.view(np.uint8), strides=(4,))
    md5.update(raw.tobytes())


def check_finite(block: np.ndarray, offset: int, sr: int, max_abs: float) -> None:
    magnitude = np.abs(block)
    if np.isfinite(block).all() and not (magnitude > max_abs).any():
        return
    bad = ~np.isfinite(block)
    if bad.any():
        index = int(np.argmax(bad.any(axis=1)))
        value = block[index][bad[index]][0]
        kind = "NaN" if np.isnan(value) else "infinite"
        raise fail(
            "non_finite",
            f"The audio contains {kind} sample values (first at {fmt_s((offset + index) / sr)}); "
            f"the file is corrupt. Re-export it as PCM or check the floating-point export.",
        )
    index = int(np.argmax((magnitude > max_abs).any(axis=1)))
    db = 20 * math.log10(max_abs)
    raise fail(
        "corrupt",
        f"The audio contains implausible sample values (|x| = {float(magnitude[index].max()):.3g}, more "
        f"than {db:.0f} dB over full scale, at {fmt_s((offset + index) / sr)}): the data is corrupt or "
        f"not audio.",
    )


def check_not_random(samples: np.ndarray, what: str) -> None:
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
    raise fail(
        "corrupt",
        f"The {what} audio data looks like random bytes (uniform full-scale noise with no "
        f"structure): the file is corrupt or is not audio. If you meant to upload noise, lower its level "
        f"below full scale and upload again.",
    )
