"""Hostile-upload corpus for audiomixer.dsp.audio_io, generated in memory (nothing is committed).

Each case is a byte string that the decoder must refuse with an AudioDecodeError whose ``code`` is one
of ``codes`` and whose ``reason`` mentions one of ``words``. The valid files the cases are built from
are written with soundfile directly, not with the module under test, and every binary surgery (header
fields, Ogg page checksums) is done here by hand.

    python tests/data/hostile/make_corpus.py OUT_DIR   # write the corpus to look at / fuzz with
"""

from __future__ import annotations

import io
import struct
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import soundfile as sf

SR = 44100


@dataclass(frozen=True)
class HostileCase:
    id: str
    data: bytes
    codes: tuple[str, ...]
    words: tuple[str, ...]
    # probe() (header level, no decoding) must already refuse it.
    header_level: bool = True
    # Limits overrides (AudioLimits field -> value) for the cases about limits.
    limits: dict[str, float] = field(default_factory=dict)
    # The file name an uploader might give it: the decoder must not care.
    filename: str = "upload.wav"


# ------------------------------------------------------------------------------------------------
# Valid material
# ------------------------------------------------------------------------------------------------


def tone(seconds: float = 1.0, sr: int = SR, channels: int = 2) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    x = 0.4 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 660 * t)
    return np.repeat(x[:, None], channels, axis=1).astype(np.float32)


def encode(x: np.ndarray, fmt: str, subtype: str | None = None, sr: int = SR) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, sr, format=fmt, subtype=subtype)
    return buf.getvalue()


def valid_files() -> dict[str, bytes]:
    x = tone()
    return {
        "wav": encode(x, "WAV", "PCM_16"),
        "flac": encode(x, "FLAC", "PCM_16"),
        "ogg": encode(x, "OGG", "VORBIS"),
        "mp3": encode(x, "MP3", "MPEG_LAYER_III"),
        "aiff": encode(x, "AIFF", "PCM_16"),
    }


# The formats libsndfile does not write, made with the encoders PyAV's FFmpeg brings:
# name -> (container, codec, stream options, container options).
FFMPEG_FORMATS: dict[str, tuple[str, str, dict[str, int], dict[str, str]]] = {
    "m4a_aac": ("ipod", "aac", {"bit_rate": 128_000}, {"movflags": "+faststart"}),
    "m4a_alac": ("ipod", "alac", {}, {"movflags": "+faststart"}),
    "webm_opus": ("webm", "libopus", {"bit_rate": 96_000}, {}),
    "wma": ("asf", "wmav2", {"bit_rate": 128_000}, {}),
}


def encode_ffmpeg(
    x: np.ndarray, name: str, sr: int = SR, index_last: bool = False, layout: str | None = None
) -> bytes:
    """(frames, channels) float32 encoded with FFmpeg through PyAV. Through a file: moving the MP4 index
    to the front (faststart, what streaming services ship) rewrites it; ``index_last`` leaves it at the
    end, as recorders do."""
    container, codec, stream_options, options = FFMPEG_FORMATS[name]
    options = {} if index_last else options
    x = x[:, None] if x.ndim == 1 else x
    layout = layout or ("stereo" if x.shape[1] == 2 else "mono")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"out.{container}"
        with av.open(str(path), "w", format=container, options=options) as out:
            stream: Any = out.add_stream(codec, rate=sr, layout=layout)
            for key, value in stream_options.items():
                setattr(stream.codec_context, key, value)
            for start in range(0, x.shape[0], 4096):
                block = np.ascontiguousarray(x[start : start + 4096].T, dtype=np.float32)
                frame = av.AudioFrame.from_ndarray(block, format="fltp", layout=layout)
                frame.sample_rate, frame.pts = sr, start
                out.mux(stream.encode(frame))
            out.mux(stream.encode(None))
        return path.read_bytes()


def valid_ffmpeg_files() -> dict[str, bytes]:
    x = tone()
    return {name: encode_ffmpeg(x, name, 48_000 if "opus" in name else SR) for name in FFMPEG_FORMATS}


# ------------------------------------------------------------------------------------------------
# Binary surgery helpers
# ------------------------------------------------------------------------------------------------


def find_chunk(data: bytes, cid: bytes, big_endian: bool = False) -> tuple[int, int]:
    """(offset of the chunk header, body size) of a RIFF/AIFF chunk."""
    pos = 12
    fmt = ">I" if big_endian else "<I"
    while pos + 8 <= len(data):
        (size,) = struct.unpack_from(fmt, data, pos + 4)
        if data[pos : pos + 4] == cid:
            return pos, size
        pos += 8 + size + (size & 1)
    raise KeyError(cid)


def patch(data: bytes, offset: int, fmt: str, *values: object) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, *values)
    return bytes(out)


def wav_fmt_offset(wav: bytes) -> int:
    return find_chunk(wav, b"fmt ")[0] + 8


def aiff_comm_offset(aiff: bytes) -> int:
    return find_chunk(aiff, b"COMM", big_endian=True)[0] + 8


def wav_header(
    channels: int, sr: int, bits: int, n_bytes: int, tag: int = 1, block_align: int | None = None
) -> bytes:
    block = channels * bits // 8 if block_align is None else block_align
    fmt = struct.pack("<HHIIHH", tag, channels, sr, sr * block, block, bits)
    return (
        b"RIFF"
        + struct.pack("<I", 4 + 8 + 16 + 8 + n_bytes)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + struct.pack("<I", n_bytes)
    )


def float_wav(x: np.ndarray) -> bytes:
    body = x.astype("<f4").tobytes()
    return wav_header(x.shape[1], SR, 32, len(body), tag=3) + body


def _ogg_crc_table() -> list[int]:
    table = []
    for i in range(256):
        r = i << 24
        for _ in range(8):
            r = ((r << 1) ^ 0x04C11DB7) & 0xFFFFFFFF if r & 0x80000000 else (r << 1) & 0xFFFFFFFF
        table.append(r)
    return table


_OGG_TABLE = _ogg_crc_table()


def ogg_crc(page: bytes) -> int:
    crc = 0
    for b in page:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _OGG_TABLE[((crc >> 24) & 0xFF) ^ b]
    return crc


def ogg_pages(data: bytes) -> list[bytearray]:
    pages, pos = [], 0
    while pos < len(data):
        nsegs = data[pos + 26]
        length = 27 + nsegs + sum(data[pos + 27 : pos + 27 + nsegs])
        pages.append(bytearray(data[pos : pos + length]))
        pos += length
    return pages


def ogg_join(pages: list[bytearray], fix_crc: bool = True) -> bytes:
    out = []
    for page in pages:
        if fix_crc:
            page[22:26] = b"\0\0\0\0"
            struct.pack_into("<I", page, 22, ogg_crc(bytes(page)))
        out.append(bytes(page))
    return b"".join(out)


def flac_streaminfo_offset(flac: bytes) -> int:
    assert flac[:4] == b"fLaC"
    return 8  # "fLaC" + the first metadata block header


def flac_set(
    flac: bytes, *, sample_rate: int | None = None, total: int | None = None, md5: bytes | None = None
) -> bytes:
    out = bytearray(flac)
    si = flac_streaminfo_offset(flac)
    packed = int.from_bytes(out[si + 10 : si + 18], "big")
    if sample_rate is not None:
        packed = (packed & ((1 << 44) - 1)) | (sample_rate << 44)
    if total is not None:
        packed = (packed & ~((1 << 36) - 1)) | total
    out[si + 10 : si + 18] = packed.to_bytes(8, "big")
    if md5 is not None:
        out[si + 18 : si + 34] = md5
    return bytes(out)


def mp3_frames(data: bytes) -> list[tuple[int, int]]:
    """(offset, length) of each MPEG-1 Layer III frame, enough for the files soundfile writes."""
    rates = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
    out, pos = [], 0
    while pos + 4 <= len(data) and data[pos] == 0xFF and data[pos + 1] & 0xE0 == 0xE0:
        br = rates[data[pos + 2] >> 4] * 1000
        sr = (44100, 48000, 32000)[(data[pos + 2] >> 2) & 3]
        length = 144 * br // sr + ((data[pos + 2] >> 1) & 1)
        out.append((pos, length))
        pos += length
    return out


def png_bytes() -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0\0"))
        + chunk(b"IEND", b"")
    )


def zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("song.wav", b"not really a wav" * 100)
    return buf.getvalue()


# ------------------------------------------------------------------------------------------------
# The corpus
# ------------------------------------------------------------------------------------------------


def build_corpus() -> list[HostileCase]:
    rng = np.random.default_rng(20261126)
    v = valid_files()
    cases: list[HostileCase] = []

    def add(case_id: str, data: bytes, codes: str, words: str, **kw: object) -> None:
        cases.append(HostileCase(case_id, data, tuple(codes.split()), tuple(words.split("|")), **kw))  # type: ignore[arg-type]

    # --- not audio at all, whatever the extension says -----------------------------------------
    add("empty_file", b"", "empty", "empty")
    add("text_named_mp3", b"These are my lyrics, la la la.\n" * 40, "not_audio", "text", filename="song.mp3")
    add(
        "html_error_page_named_wav",
        b"<!DOCTYPE html><html><body>403 Forbidden</body></html>\n" * 20,
        "not_audio",
        "html",
    )
    add("json_named_flac", b'{"error": "expired"}' * 10, "not_audio", "json", filename="a.flac")
    add("png_named_wav", png_bytes(), "not_audio", "png")
    add("zip_named_mp3", zip_bytes(), "not_audio", "zip", filename="a.mp3")
    add(
        "pdf_named_ogg",
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n" * 10,
        "not_audio",
        "pdf",
        filename="a.ogg",
    )
    add(
        "jpeg_named_aiff",
        b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + rng.bytes(2000),
        "not_audio",
        "jpeg",
        filename="a.aiff",
    )
    add(
        "midi_named_wav", b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x01\xe0MTrk" + bytes(64), "not_audio", "midi"
    )
    add("random_bytes_named_mp3", rng.bytes(65536), "not_audio", "not a recognised audio", filename="a.mp3")
    add("zeros_named_wav", bytes(8192), "not_audio", "not a recognised audio")
    # Containers FFmpeg reads, holding junk: an M4A without its index (moov), a WebM, raw AAC (ADTS).
    add("m4a_container", b"\x00\x00\x00\x20ftypM4A \x00\x00\x02\x00" + rng.bytes(4000), "truncated", "moov")
    add("webm_container", b"\x1aE\xdf\xa3" + rng.bytes(4000), "corrupt", "webm")
    add(
        "adts_aac_named_mp3",
        (b"\xff\xf1\x50\x80\x02\x1f\xfc" + bytes(9)) * 200,
        "bad_sample_rate corrupt",
        "aac",
    )

    # --- truncated files of every format ------------------------------------------------------
    for fmt, data in v.items():
        for frac in (0.1, 0.5, 0.9):
            add(
                f"{fmt}_truncated_{int(frac * 100)}pct",
                data[: int(len(data) * frac)],
                "truncated",
                "truncated",
                # FLAC and MP3 state their length in frames: only decoding finds where the audio stops.
                header_level=fmt not in ("flac", "mp3") or (frac == 0.1 and fmt == "mp3"),
            )

    # --- lying headers -------------------------------------------------------------------------
    w, a = v["wav"], v["aiff"]
    fo, co = wav_fmt_offset(w), aiff_comm_offset(a)
    add("wav_sample_rate_0hz", patch(w, fo + 4, "<I", 0), "bad_sample_rate", "sample rate")
    add("wav_sample_rate_10mhz", patch(w, fo + 4, "<I", 10_000_000), "bad_sample_rate", "sample rate")
    add("wav_channels_0", patch(w, fo + 2, "<H", 0), "bad_channels", "channels")
    add("wav_channels_300", patch(w, fo + 2, "<H", 300), "bad_channels", "channels")
    add("wav_block_align_lies", patch(w, fo + 12, "<H", 3), "bad_header", "block align")
    add("wav_bits_per_sample_7", patch(patch(w, fo + 14, "<H", 7), fo + 12, "<H", 2), "bad_header", "bit")
    data_off, _ = find_chunk(w, b"data")
    add("wav_data_size_claims_2gb", patch(w, data_off + 4, "<I", 0x7FFFFFF0), "truncated", "truncated")
    list_chunk = b"LIST" + struct.pack("<I", 10_000_000) + b"INFO"
    add("wav_chunk_runs_past_eof", w[:12] + list_chunk + w[12:200], "truncated", "truncated")
    add("wav_garbage_chunk_id", w[:12] + b"\x00\x01\xfe\xff" + w[16:], "corrupt", "chunk")
    add("wav_no_data_chunk", w[:data_off], "truncated", "data chunk")
    # FFmpeg decodes MP3 in WAV: PCM bytes behind that tag are damaged MP3.
    add("wav_mp3_codec_inside", patch(w, fo, "<H", 0x55), "corrupt", "mp3", header_level=False)
    add("aiff_sample_rate_0hz", a[: co + 8] + bytes(10) + a[co + 18 :], "bad_sample_rate", "sample rate")
    add(
        "aiff_sample_rate_nan",
        a[: co + 8] + b"\x7f\xff" + b"\xc0" + bytes(7) + a[co + 18 :],
        "bad_sample_rate",
        "sample rate",
    )
    add("aiff_channels_300", patch(a, co, ">h", 300), "bad_channels", "channels")
    add("aiff_frames_claim_10x", patch(a, co + 2, ">I", SR * 10), "truncated", "truncated")
    aifc_unknown = b"FORM" + a[4:8] + b"AIFC" + a[12:]
    comm = find_chunk(aifc_unknown, b"COMM", big_endian=True)[0]
    # AIFC's COMM has a compression id after the rate: grow the chunk to hold one nobody decodes.
    aifc_unknown = (
        aifc_unknown[: comm + 4]
        + struct.pack(">I", 18 + 6)
        + aifc_unknown[comm + 8 : comm + 8 + 18]
        + b"zzzz\x00\x00"
        + aifc_unknown[comm + 8 + 18 :]
    )
    add("aifc_unknown_compression", aifc_unknown, "unsupported_codec corrupt", "compression|comm")
    f = v["flac"]
    add("flac_sample_rate_0hz", flac_set(f, sample_rate=0), "bad_sample_rate", "sample rate")
    add("flac_total_claims_10x", flac_set(f, total=SR * 10), "truncated", "truncated", header_level=False)
    add("flac_md5_mismatch", flac_set(f, md5=bytes(range(1, 17))), "corrupt", "checksum", header_level=False)
    mid = len(f) // 2
    add(
        "flac_corrupt_middle",
        f[:mid] + bytes(b ^ 0x5A for b in f[mid : mid + 64]) + f[mid + 64 :],
        "corrupt",
        "corrupt",
        header_level=False,
    )
    add("flac_streaminfo_then_random", f[:42] + rng.bytes(40000), "corrupt truncated", "corrupt|truncated")

    # --- Ogg -----------------------------------------------------------------------------------
    pages = ogg_pages(v["ogg"])
    id_page = bytearray(pages[0])
    body = 27 + id_page[26]
    bad_ch = [bytearray(id_page), *pages[1:]]
    bad_ch[0][body + 11] = 0  # vorbis id header: "\x01vorbis", version (4), channels (1)
    add("ogg_vorbis_channels_0", ogg_join(bad_ch), "bad_channels", "channels")
    bad_sr = [bytearray(id_page), *pages[1:]]
    struct.pack_into("<I", bad_sr[0], body + 12, 0)
    add("ogg_vorbis_sample_rate_0hz", ogg_join(bad_sr), "bad_sample_rate", "sample rate")
    flipped = [bytearray(p) for p in pages]
    flipped[len(pages) // 2][60] ^= 0xFF
    add("ogg_corrupt_page_checksum", ogg_join(flipped, fix_crc=False), "corrupt", "checksum")
    missing = [bytearray(p) for i, p in enumerate(pages) if i != len(pages) // 2]
    add("ogg_page_missing", ogg_join(missing, fix_crc=False), "corrupt", "missing|corrupt")
    no_eos = [bytearray(p) for p in pages]
    no_eos[-1][5] &= ~0x04 & 0xFF
    add("ogg_no_end_of_stream", ogg_join(no_eos), "truncated", "truncated")
    add(
        "ogg_headers_then_random",
        b"".join(bytes(p) for p in pages[:2]) + rng.bytes(20000),
        "corrupt truncated",
        "corrupt|truncated",
    )
    speex = bytearray(id_page)
    speex[body : body + 7] = b"Speex  "
    # Not a Speex stream (FFmpeg decodes those): a Vorbis stream whose first header is another codec's.
    add(
        "ogg_speex_codec",
        ogg_join([speex, *pages[1:]]),
        "unsupported_codec truncated corrupt",
        "speex|truncated|corrupt",
    )

    # --- MP3 -----------------------------------------------------------------------------------
    m = v["mp3"]
    frames = mp3_frames(m)
    noise_payload = bytearray(m)
    for off, length in frames[1:]:
        noise_payload[off + 4 : off + length] = rng.bytes(length - 4)
    add("mp3_valid_headers_garbage_payload", bytes(noise_payload), "corrupt", "corrupt", header_level=False)
    add("mp3_one_frame_header_then_text", m[:4] + b"hello world " * 300, "not_audio", "text")
    add(
        "mp3_id3_tag_then_text",
        b"ID3\x03\x00\x00\x00\x00\x00\x20" + bytes(32) + b"lyrics " * 300,
        "not_audio",
        "text",
    )
    third = frames[len(frames) // 3][0]
    add(
        "mp3_random_bytes_mid_stream",
        m[:third] + rng.bytes(len(m) - third),
        "corrupt truncated",
        "corrupt|truncated",
        header_level=False,
    )

    # --- the formats FFmpeg brings: cut, damaged, lying -----------------------------------------
    ff = valid_ffmpeg_files()
    for name, data in ff.items():
        for frac in (0.3, 0.8):
            # MP4, WebM and WMA state their length, but only decoding finds where the audio stops.
            add(
                f"{name}_truncated_{int(frac * 100)}pct",
                data[: int(len(data) * frac)],
                "truncated",
                "truncated",
                header_level=False,
            )
    m4a = ff["m4a_aac"]
    # Written as recorders do, index (moov) last: a download cut short has no index at all.
    moov_last = encode_ffmpeg(tone(), "m4a_aac", index_last=True)
    add("m4a_index_last_cut_short", moov_last[: int(len(moov_last) * 0.9)], "truncated", "moov|index")
    middle = len(m4a) // 2
    add(
        "m4a_aac_damaged_middle",
        m4a[:middle] + rng.bytes(600) + m4a[middle + 600 :],
        "corrupt",
        "corrupt",
        header_level=False,
    )
    webm = ff["webm_opus"]
    add(
        "webm_opus_headers_then_random",
        webm[:400] + rng.bytes(20000),
        "corrupt truncated",
        "corrupt|truncated",
        header_level=False,
    )

    # --- samples that are not audio ----------------------------------------------------------
    x = tone(0.5)
    nan = x.copy()
    nan[1000, 0] = np.nan
    add("float_wav_with_nan", float_wav(nan), "non_finite", "nan", header_level=False)
    inf = x.copy()
    inf[5000, 1] = np.inf
    add("float_wav_with_inf", float_wav(inf), "non_finite", "infinite", header_level=False)
    random_float = rng.bytes(SR * 2 * 4)
    add(
        "float_wav_header_then_random",
        wav_header(2, SR, 32, len(random_float), tag=3) + random_float,
        "non_finite corrupt",
        "nan|infinite|implausible",
        header_level=False,
    )
    random_pcm = rng.bytes(SR * 2 * 2)
    add(
        "pcm_wav_header_then_random",
        wav_header(2, SR, 16, len(random_pcm)) + random_pcm,
        "corrupt",
        "random",
        header_level=False,
    )
    random_aiff = a[: find_chunk(a, b"SSND", big_endian=True)[0] + 16]
    random_aiff += rng.bytes(len(a) - len(random_aiff))
    add("pcm_aiff_header_then_random", random_aiff, "corrupt", "random", header_level=False)

    # --- limits ----------------------------------------------------------------------------------
    add("over_max_bytes", w, "too_large", "limit", limits={"max_bytes": 10_000})
    for fmt in ("wav", "flac", "ogg", "mp3", "aiff"):
        add(f"{fmt}_too_long", v[fmt], "too_long", "too long", limits={"max_duration_s": 0.5})
    # The header under-reports: STREAMINFO says 0.1 s, the frames run to 1 s.
    add(
        "flac_header_under_reports_length",
        flac_set(f, total=SR // 10, md5=bytes(16)),
        "bad_header",
        "contradicts",
        header_level=False,
        limits={"max_duration_s": 0.5},
    )
    add(
        "flac_unknown_length_too_long",
        flac_set(f, total=0, md5=bytes(16)),
        "too_long",
        "too long",
        header_level=False,
        limits={"max_duration_s": 0.5},
    )
    short = encode(tone(0.01), "WAV", "PCM_16")
    add("wav_10ms_too_short", short, "too_short", "too short")
    # A data size of 0 is also what streaming writers leave: only decoding tells.
    add("wav_zero_frames", wav_header(2, SR, 16, 0), "too_short", "too short", header_level=False)
    return cases


BUILDERS: dict[str, Callable[[], list[HostileCase]]] = {"hostile": build_corpus}


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__)
        return 2
    out = Path(argv[1])
    out.mkdir(parents=True, exist_ok=True)
    cases = build_corpus()
    for case in cases:
        suffix = Path(case.filename).suffix
        (out / f"{case.id}{suffix}").write_bytes(case.data)
    print(f"wrote {len(cases)} files to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
