"""audiomixer.dsp.audio_io on valid material: round trips, sniffing, normalising, encoding, hashing.
(Hostile input lives in test_hostile_audio.py.)"""

from __future__ import annotations

import dataclasses
import io
import struct

import numpy as np
import pytest
import soundfile as sf

from audiomixer.dsp.audio_io import (
    AudioDecodeError,
    AudioInfo,
    AudioLimits,
    DecodedAudio,
    content_hash,
    decode_audio,
    downmix_matrix,
    encode_audio,
    normalise,
    probe,
    sniff_format,
)
from audiomixer.settings import Settings

LIMITS = AudioLimits.from_settings(Settings())


def sine(f0: float, seconds: float, sr: int, channels: int = 2, amp: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    x = amp * np.sin(2 * np.pi * f0 * t)
    # Channels differ in level so that a swap or a fold would show.
    return np.stack([x * (1.0 - 0.25 * c) for c in range(channels)], axis=1).astype(np.float32)


def peak_hz(x: np.ndarray, sr: int) -> float:
    mono = x.mean(axis=1) if x.ndim == 2 else x
    spectrum = np.abs(np.fft.rfft(mono * np.hanning(len(mono)), n=1 << 18))
    return float(np.argmax(spectrum) * sr / (1 << 18))


def sf_bytes(x: np.ndarray, sr: int, fmt: str, subtype: str | None = None) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, sr, format=fmt, subtype=subtype)
    return buf.getvalue()


# ------------------------------------------------------------------------------------------------
# Round trips
# ------------------------------------------------------------------------------------------------

ROUND_TRIPS = [
    # fmt, subtype, sample rate, max abs error (None: lossy, compare loosely), frame tolerance
    ("wav", None, 44100, 1 / 32768 + 1e-6, 0),
    ("wav", "PCM_24", 48000, 1 / 2**23 + 1e-7, 0),
    ("wav", "FLOAT", 22050, 0.0, 0),
    ("flac", None, 44100, 1 / 2**23 + 1e-7, 0),
    ("flac", "PCM_16", 96000, 1 / 32768 + 1e-6, 0),
    ("aiff", None, 44100, 1 / 32768 + 1e-6, 0),
    ("aiff", "PCM_24", 32000, 1 / 2**23 + 1e-7, 0),
    ("aiff", "FLOAT", 44100, 0.0, 0),
    ("mp3", None, 44100, None, 0),
    ("mp3", None, 22050, None, 0),
    # FFmpeg's Vorbis decoder may end up to one short block (128 frames) early.
    ("ogg", None, 44100, None, 128),
    ("ogg", "OPUS", 48000, None, 0),
]


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize(
    ("fmt", "subtype", "sr", "max_err", "frame_tol"),
    ROUND_TRIPS,
    ids=[f"{r[0]}-{r[1] or 'default'}-{r[2]}" for r in ROUND_TRIPS],
)
def test_round_trip(
    fmt: str, subtype: str | None, sr: int, max_err: float | None, frame_tol: int, channels: int
) -> None:
    x = sine(440.0, 1.5, sr, channels)
    data = encode_audio(x, sr, fmt, subtype)
    assert sniff_format(data) == fmt

    info = probe(data, LIMITS)
    assert (info.format, info.sample_rate, info.channels) == (fmt, sr, channels)
    assert info.duration_s == pytest.approx(1.5, abs=0.06)

    decoded = decode_audio(data, LIMITS)
    y = decoded.samples
    assert y.dtype == np.float32 and y.ndim == 2 and y.flags.c_contiguous
    assert decoded.sample_rate == sr and decoded.info.channels == channels
    assert decoded.info.frames == y.shape[0]
    assert decoded.info.duration_s == pytest.approx(y.shape[0] / sr)
    assert abs(y.shape[0] - x.shape[0]) <= frame_tol
    assert peak_hz(y, sr) == pytest.approx(440.0, rel=0.005)
    if max_err is not None:
        assert np.abs(y - x).max() <= max_err
    else:
        # Lossy: same level per channel within 1 dB, and mostly the same waveform.
        for c in range(channels):
            rms_in = np.sqrt(np.mean(x[:, c] ** 2))
            rms_out = np.sqrt(np.mean(y[:, c] ** 2))
            assert 20 * np.log10(rms_out / rms_in) == pytest.approx(0.0, abs=1.0)
        residual = y - x
        snr = 10 * np.log10(np.sum(x**2) / np.sum(residual**2))
        assert snr > 10.0


@pytest.mark.parametrize(
    ("fmt", "subtype"),
    [
        ("WAV", "PCM_U8"),
        ("WAV", "PCM_32"),
        ("WAV", "DOUBLE"),
        ("WAV", "ULAW"),
        ("WAV", "ALAW"),
        ("WAV", "IMA_ADPCM"),
        ("WAV", "MS_ADPCM"),
        ("WAVEX", "PCM_16"),
        ("RF64", "PCM_16"),
        ("AIFF", "PCM_S8"),
        ("AIFF", "ULAW"),
        ("FLAC", "PCM_S8"),
    ],
)
def test_other_subtypes_decode(fmt: str, subtype: str) -> None:
    x = sine(330.0, 1.0, 44100)
    decoded = decode_audio(sf_bytes(x, 44100, fmt, subtype), LIMITS)
    assert abs(decoded.samples.shape[0] - x.shape[0]) <= 1024  # ADPCM pads to its block size
    assert peak_hz(decoded.samples, 44100) == pytest.approx(330.0, rel=0.005)
    n = min(x.shape[0], decoded.samples.shape[0])
    # ADPCM's step size adapts from zero: skip its attack.
    assert np.abs(decoded.samples[2048:n] - x[2048:n]).max() < 0.05


def test_real_noise_is_not_mistaken_for_random_bytes() -> None:
    rng = np.random.default_rng(3)
    noise = np.clip(0.3 * rng.standard_normal((44100, 2)), -1, 1).astype(np.float32)
    decoded = decode_audio(encode_audio(noise, 44100, "wav"), LIMITS)
    assert decoded.samples.shape == noise.shape


def test_tags_before_and_after_are_accepted() -> None:
    x = sine(440.0, 1.0, 44100)
    id3 = b"ID3\x03\x00\x00\x00\x00\x00\x20" + bytes(32)
    mp3 = encode_audio(x, 44100, "mp3")
    tagged = id3 + mp3 + b"TAG" + bytes(125)
    assert sniff_format(tagged) == "mp3"
    assert decode_audio(tagged, LIMITS).samples.shape[0] == pytest.approx(44100, abs=1152)
    flac = id3 + encode_audio(x, 44100, "flac")
    assert sniff_format(flac) == "flac"
    assert decode_audio(flac, LIMITS).samples.shape == x.shape


def test_streamed_wav_with_unknown_size_is_read_to_the_end() -> None:
    x = sine(440.0, 1.0, 44100)
    data = bytearray(encode_audio(x, 44100, "wav"))
    data_pos = data.index(b"data")
    struct.pack_into("<I", data, 4, 0xFFFFFFFF)
    struct.pack_into("<I", data, data_pos + 4, 0xFFFFFFFF)
    decoded = decode_audio(bytes(data), LIMITS)
    assert decoded.samples.shape == x.shape


def test_decode_budget_catches_a_header_that_under_reports() -> None:
    # A streamed WAV says nothing about its length; the decode budget still stops at the limit.
    x = sine(440.0, 2.0, 8000, channels=1)
    data = bytearray(encode_audio(x, 8000, "wav"))
    struct.pack_into("<I", data, data.index(b"data") + 4, 0xFFFFFFFF)
    limits = dataclasses.replace(LIMITS, max_duration_s=1.0)
    with pytest.raises(AudioDecodeError) as excinfo:
        decode_audio(bytes(data), limits)
    assert excinfo.value.code == "too_long"


def test_silence_is_valid_audio() -> None:
    silence = np.zeros((44100, 2), dtype=np.float32)
    for fmt in ("wav", "flac", "mp3", "ogg", "aiff"):
        decoded = decode_audio(encode_audio(silence, 44100, fmt), LIMITS)
        assert np.abs(decoded.samples).max() < 1e-3


def test_limits_from_settings() -> None:
    from audiomixer.settings import Settings

    settings = Settings(max_upload_bytes=1234, max_duration_s=60.0, max_channels=4)
    limits = AudioLimits.from_settings(settings)
    assert (limits.max_bytes, limits.max_duration_s, limits.max_channels) == (1234, 60.0, 4)
    assert AudioLimits.from_settings(settings, max_duration_s=10.0).max_duration_s == 10.0


def test_sample_rate_limits_come_from_limits() -> None:
    data = encode_audio(sine(440, 0.5, 96000), 96000, "flac")
    assert probe(data, LIMITS).sample_rate == 96000
    with pytest.raises(AudioDecodeError) as excinfo:
        probe(data, dataclasses.replace(LIMITS, max_sample_rate=48000))
    assert excinfo.value.code == "bad_sample_rate" and "96000" in excinfo.value.reason


# ------------------------------------------------------------------------------------------------
# Sniffing
# ------------------------------------------------------------------------------------------------


def test_sniffing_uses_content_only() -> None:
    x = sine(440.0, 0.5, 44100)
    for fmt in ("wav", "flac", "ogg", "mp3", "aiff"):
        data = encode_audio(x, 44100, fmt)
        assert sniff_format(data) == fmt
        # What a client calls the file does not exist for the decoder: same bytes, same answer.
        assert decode_audio(data, LIMITS).info.format == fmt
    assert sniff_format(b"RIFF\x00\x00\x00\x00AVI LIST") is None
    assert sniff_format(b"hello.mp3") is None
    assert sniff_format(b"") is None
    assert sniff_format(b"\xff\xfb\x90\x64" + b"text" * 100) is None


# ------------------------------------------------------------------------------------------------
# Normalise
# ------------------------------------------------------------------------------------------------


def _decoded(x: np.ndarray, sr: int, fmt: str = "wav", positions: tuple[str, ...] = ()) -> DecodedAudio:
    info = AudioInfo(fmt, "pcm_f32le", sr, x.shape[1], x.shape[0], x.shape[0] / sr, positions)
    return DecodedAudio(samples=x, sample_rate=sr, info=info)


@pytest.mark.parametrize(("sr", "channels"), [(22050, 1), (48000, 2), (44100, 1), (96000, 2), (8000, 1)])
def test_normalise_to_44k1_stereo(sr: int, channels: int) -> None:
    x = sine(1000.0, 1.0, sr, channels, amp=0.5)
    out = normalise(decode_audio(encode_audio(x, sr, "wav", "FLOAT"), LIMITS))
    assert out.dtype == np.float32 and out.shape[1] == 2 and out.flags.c_contiguous
    assert abs(out.shape[0] - 44100) <= 1
    assert peak_hz(out, 44100) == pytest.approx(1000.0, rel=0.003)
    mid = out[2000:-2000]
    if channels == 1:
        np.testing.assert_array_equal(out[:, 0], out[:, 1])
        assert np.abs(mid).max() == pytest.approx(0.5, abs=0.01)
    else:
        assert np.abs(mid[:, 0]).max() == pytest.approx(0.5, abs=0.01)
        assert np.abs(mid[:, 1]).max() == pytest.approx(0.375, abs=0.01)


def _multichannel(freqs: list[float], sr: int = 44100) -> np.ndarray:
    return np.stack([sine(f, 1.0, sr, 1, amp=0.2)[:, 0] for f in freqs], axis=1)


def _band_level(x: np.ndarray, f: float, sr: int = 44100) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)))) / len(x)
    k = round(f * len(x) / sr)
    return float(spectrum[k - 2 : k + 3].max())


def test_normalise_folds_5_1_by_speaker_position() -> None:
    # SMPTE order: FL FR FC LFE BL BR, each on its own frequency.
    freqs = [300.0, 500.0, 700.0, 60.0, 1100.0, 1300.0]
    out = normalise(decode_audio(encode_audio(_multichannel(freqs), 44100, "wav", "FLOAT"), LIMITS))
    left, right = out[:, 0], out[:, 1]
    ref = _band_level(left, 300.0)
    assert _band_level(right, 300.0) < ref * 1e-3  # FL only left
    assert _band_level(left, 500.0) < ref * 1e-3 and _band_level(right, 500.0) == pytest.approx(ref, rel=0.02)
    assert _band_level(left, 700.0) == pytest.approx(ref / np.sqrt(2), rel=0.02)  # FC at -3 dB both sides
    assert _band_level(right, 700.0) == pytest.approx(ref / np.sqrt(2), rel=0.02)
    assert _band_level(left, 60.0) < ref * 1e-3 and _band_level(right, 60.0) < ref * 1e-3  # LFE dropped
    assert _band_level(left, 1100.0) > ref * 0.5 and _band_level(right, 1100.0) < ref * 1e-3  # BL left
    assert _band_level(right, 1300.0) > ref * 0.5 and _band_level(left, 1300.0) < ref * 1e-3  # BR right


def test_downmix_follows_vorbis_order_and_named_positions() -> None:
    # Vorbis stores 5.1 as FL FC FR BL BR LFE; FFmpeg hands it back in its own order, with names.
    x = _multichannel([300.0, 700.0, 500.0, 1100.0, 1300.0, 60.0])
    out = normalise(decode_audio(sf_bytes(x, 44100, "OGG", "VORBIS"), LIMITS))
    left, right = out[:, 0], out[:, 1]
    ref = _band_level(left, 300.0)
    assert _band_level(left, 700.0) == pytest.approx(ref / np.sqrt(2), rel=0.1)  # FC at -3 dB both sides
    assert _band_level(right, 700.0) == pytest.approx(ref / np.sqrt(2), rel=0.1)
    assert _band_level(left, 60.0) < ref * 1e-2 and _band_level(right, 60.0) < ref * 1e-2  # LFE dropped
    assert _band_level(left, 500.0) < ref * 1e-2  # FR only right
    # Named positions FL FR FC LFE on 4 channels beat the default quad order.
    quad = np.zeros((100, 4), dtype=np.float32)
    named = downmix_matrix(_decoded(quad, 44100, positions=("FL", "FR", "FC", "LFE")).info)
    np.testing.assert_allclose(named[2], [1 / np.sqrt(2)] * 2, rtol=1e-6)
    np.testing.assert_allclose(named[3], [0.0, 0.0])
    default = downmix_matrix(_decoded(quad, 44100).info)
    np.testing.assert_allclose(default[2], [1 / np.sqrt(2), 0.0], rtol=1e-6)  # BL


def test_wav_extensible_mask_is_read_from_the_header() -> None:
    x = _multichannel([300.0, 500.0, 700.0, 60.0])
    body = x.astype("<f4").tobytes()
    guid_float = struct.pack("<IHH", 3, 0x0000, 0x0010) + bytes.fromhex("800000aa00389b71")
    fmt = struct.pack("<HHIIHHHHI", 0xFFFE, 4, 44100, 44100 * 16, 16, 32, 22, 32, 0xF) + guid_float
    riff = (
        b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(body)) + body
    )
    decoded = decode_audio(b"RIFF" + struct.pack("<I", len(riff)) + riff, LIMITS)
    assert decoded.info.positions == ("FL", "FR", "FC", "LFE")
    out = normalise(decoded)
    assert _band_level(out[:, 0], 700.0) == pytest.approx(_band_level(out[:, 1], 700.0), rel=0.02)
    assert _band_level(out[:, 0], 60.0) < 1e-4


def test_normalise_is_clip_safe_and_does_not_alias_input() -> None:
    x = sine(220.0, 0.5, 44100, 2, amp=2.0)  # a hot float file, +6 dBFS
    decoded = _decoded(x, 44100)
    before = decoded.samples.copy()
    out = normalise(decoded)
    assert np.abs(out).max() <= 1.0
    assert np.abs(out).max() == pytest.approx(1.0, abs=1e-3)
    # Scaled, not clipped: the shape survives.
    np.testing.assert_allclose(out, x / np.abs(x).max(), atol=1e-5)
    out[:] = 0
    np.testing.assert_array_equal(decoded.samples, before)


def test_normalise_from_each_decoded_format() -> None:
    x = sine(440.0, 1.0, 48000)
    for fmt in ("wav", "flac", "ogg", "mp3", "aiff"):
        out = normalise(decode_audio(encode_audio(x, 48000, fmt), LIMITS))
        assert out.shape[1] == 2 and abs(out.shape[0] - 44100) <= 128
        assert peak_hz(out, 44100) == pytest.approx(440.0, rel=0.005)


# ------------------------------------------------------------------------------------------------
# Encode and hash
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "subtype", "expect"),
    [
        ("wav", None, ("WAV", "PCM_16")),
        ("wav", "FLOAT", ("WAV", "FLOAT")),
        ("flac", None, ("FLAC", "PCM_24")),
        ("mp3", None, ("MP3", "MPEG_LAYER_III")),
        ("ogg", None, ("OGG", "VORBIS")),
        ("aiff", None, ("AIFF", "PCM_16")),
    ],
)
def test_encode_formats(fmt: str, subtype: str | None, expect: tuple[str, str]) -> None:
    data = encode_audio(sine(440.0, 0.5, 44100), 44100, fmt, subtype)
    info = sf.info(io.BytesIO(data))
    assert (info.format, info.subtype) == expect


def test_encode_clips_instead_of_wrapping() -> None:
    x = np.full((4410, 1), 1.5, dtype=np.float32)
    x[::2] = -1.5
    for fmt in ("wav", "flac"):
        y = decode_audio(encode_audio(x, 44100, fmt), LIMITS).samples
        np.testing.assert_allclose(np.sign(y), np.sign(x))
        assert np.abs(y).max() <= 1.0


def test_encode_rejects_bad_input() -> None:
    x = sine(440.0, 0.1, 44100)
    with pytest.raises(ValueError, match="format"):
        encode_audio(x, 44100, "m4a")
    with pytest.raises(ValueError, match="PCM_8"):
        encode_audio(x, 44100, "flac", "PCM_8")
    bad = x.copy()
    bad[3, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        encode_audio(bad, 44100, "wav")
    with pytest.raises(ValueError, match="mp3"):
        encode_audio(x, 96000, "mp3")
    with pytest.raises(ValueError, match="floating"):
        encode_audio((x * 1000).astype(np.int16), 44100, "wav")


def test_content_hash() -> None:
    x = sine(440.0, 0.2, 44100)
    data = encode_audio(x, 44100, "wav")
    assert content_hash(data) == content_hash(bytes(data)) and len(content_hash(data)) == 64
    assert content_hash(data) != content_hash(data[:-1] + b"\x01")
    assert content_hash(x) == content_hash(x.copy())
    assert content_hash(x) != content_hash(x.astype(np.float64))
    assert content_hash(x) != content_hash(x.reshape(-1, 1))
    # The same audio in two containers: different uploads, same decoded samples.
    wav, aiff = encode_audio(x, 44100, "wav", "FLOAT"), encode_audio(x, 44100, "aiff", "FLOAT")
    assert content_hash(wav) != content_hash(aiff)
    assert content_hash(decode_audio(wav, LIMITS).samples) == content_hash(decode_audio(aiff, LIMITS).samples)


def test_long_ogg_encode_does_not_crash_the_process() -> None:
    # One 96 s+ write overflowed libvorbis' stack and killed the interpreter; encode_audio writes in blocks.
    silence = np.zeros((44100 * 100, 2), dtype=np.float32)
    decoded = decode_audio(encode_audio(silence, 44100, "ogg"), LIMITS)
    assert decoded.samples.shape == silence.shape


def test_decode_memory_is_bounded_by_the_limits() -> None:
    import tracemalloc

    # FLAC that does not say how long it is: only the decode budget bounds the buffer.
    x = sine(440.0, 3.0, 44100)
    data = bytearray(encode_audio(x, 44100, "flac", "PCM_16"))
    data[18:26] = (int.from_bytes(data[18:26], "big") & ~((1 << 36) - 1)).to_bytes(8, "big")
    data[26:42] = bytes(16)  # no MD5 either
    limits = dataclasses.replace(LIMITS, max_duration_s=0.5)
    tracemalloc.start()
    try:
        with pytest.raises(AudioDecodeError) as excinfo:
            decode_audio(bytes(data), limits)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert excinfo.value.code == "too_long"
    # 0.5 s of stereo float32 is 176 kB; the whole file decoded would be 1 MB.
    assert peak < 700_000
    assert decode_audio(bytes(data), LIMITS).samples.shape == x.shape


def test_samples_cap_refuses_before_decoding_what_the_duration_limit_admits() -> None:
    # 2 s of 8-channel 96 kHz audio is within 15 minutes, but over a 1-million-sample budget: refused from
    # the header, before a buffer is made (the limits once admitted 15 min x 192 kHz x 8 ch: 5.5 GB).
    x = np.zeros((2 * 96000, 8), dtype=np.float32)
    data = encode_audio(x, 96000, "wav")
    limits = dataclasses.replace(LIMITS, max_samples=1_000_000)
    with pytest.raises(AudioDecodeError) as excinfo:
        probe(data, limits)
    assert excinfo.value.code == "too_long" and "million samples" in excinfo.value.reason
    assert "8 channels at 96000 Hz" in excinfo.value.reason
    assert decode_audio(data, dataclasses.replace(LIMITS, max_samples=2_000_000)).samples.shape == x.shape
    assert (
        AudioLimits.from_settings(Settings()).max_samples * 4 < 1_000_000_000
    )  # under 1 GB of float32, whatever the header says


def test_samples_cap_bounds_memory_while_decoding_a_stream_of_unknown_length() -> None:
    import tracemalloc

    # FLAC that does not say how long it is (a stream): only the running cap bounds the buffer.
    x = sine(440.0, 2.0, 48000, channels=8, amp=0.2)
    data = bytearray(encode_audio(x, 48000, "flac", "PCM_16"))
    data[18:26] = (int.from_bytes(data[18:26], "big") & ~((1 << 36) - 1)).to_bytes(8, "big")
    data[26:42] = bytes(16)
    limits = dataclasses.replace(LIMITS, max_samples=48000 * 8 // 4)  # 0.25 s of it
    tracemalloc.start()
    try:
        with pytest.raises(AudioDecodeError) as excinfo:
            decode_audio(bytes(data), limits)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert excinfo.value.code == "too_long" and "at least" in excinfo.value.reason
    # The whole file as float32 would be 3 MB; the cap is 384 kB.
    assert peak < 1_500_000
