"""Request-level hostile corpus: HTTP requests a careless or malicious client sends to the API, each with
the 4xx it must get. Kept as data so that tests/integration/test_bad_input.py drives every case through the
local stack, and a new case is one more entry here.

Paths and bodies may hold placeholders that the test fills in with real ids of the calling tenant's world:

    {own_project}      a project of the caller that is not ready (queued, waiting for its upload)
    {deleted_project}  a project of the caller, deleted        {deleted_sound}  a sound, deleted
    {foreign_project}  another tenant's project                {foreign_sound}  another tenant's sound
    {missing_id}       a well-formed id that names nothing

A `Blob(size)` stands for `size` bytes generated when the case is sent (no megabytes at import time).
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from typing import Any

API = "/api/v1"


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


@dataclass(frozen=True)
class Blob:
    """`size` bytes of `fill`, built when the request is sent."""

    size: int
    fill: bytes = b"\x00"

    def build(self) -> bytes:
        return (self.fill * (self.size // len(self.fill) + 1))[: self.size]


FilePart = tuple[str, tuple[str, "bytes | Blob", str]]


@dataclass(frozen=True)
class RequestCase:
    name: str
    method: str
    path: str
    expect: tuple[int, ...]
    # The error envelope's code, when one code is the only right answer.
    code: str | None = None
    json: Any = MISSING
    content: bytes | Blob | None = None
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    data: dict[str, str] | None = None
    files: tuple[FilePart, ...] | None = None
    # Words the error message must contain (lowercase), e.g. the 413's pointer to presigned uploads.
    words: tuple[str, ...] = ()
    why: str = ""


def _cursor(payload: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def _mix(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"project_id": "{own_project}", "config": {}, "settings": {}}
    body.update(overrides)
    return body


def _presign(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "filename": "song.wav",
        "content_type": "audio/wav",
        "size": 1000,
        "kind": "base-track",
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not MISSING}


TINY_WAV_HEADER = b"RIFF\x24\x00\x00\x00WAVEfmt "  # just enough to look like audio to a proxy
JSON = {"Content-Type": "application/json"}

CASES: list[RequestCase] = [
    # --- mix settings: numbers out of range, wrong types, unknown stems -> 422 ---------------------
    RequestCase(
        "mix_volume_negative",
        "POST",
        f"{API}/mix",
        (422,),
        "validation_error",
        json=_mix(config={"drums": {"volume": -1}}),
    ),
    RequestCase(
        "mix_volume_1e308",
        "POST",
        f"{API}/mix",
        (422,),
        "validation_error",
        json=_mix(config={"bass": {"volume": 1e308}}),
    ),
    RequestCase(
        "mix_volume_nan_string",
        "POST",
        f"{API}/mix",
        (422,),
        "validation_error",
        json=_mix(config={"vocals": {"volume": "NaN"}}),
        why="NaN compares false with every bound, so a range check alone lets it through",
    ),
    RequestCase(
        "mix_volume_infinity_string",
        "POST",
        f"{API}/mix",
        (422,),
        "validation_error",
        json=_mix(config={"other": {"volume": "Infinity"}}),
    ),
    RequestCase(
        "mix_volume_word",
        "POST",
        f"{API}/mix",
        (422,),
        "validation_error",
        json=_mix(config={"drums": {"volume": "loud"}}),
    ),
    RequestCase(
        "mix_volume_bool_list",
        "POST",
        f"{API}/mix",
        (422,),
        "validation_error",
        json=_mix(config={"drums": {"volume": [True]}}),
    ),
    RequestCase(
        "mix_grain_0ms",
        "POST",
        f"{API}/mix",
        (422,),
        "validation_error",
        json=_mix(settings={"grain_duration_ms": 0}),
    ),
    RequestCase(
        "mix_grain_5ms",
        "POST",
        f"{API}/mix",
        (422,),
        "validation_error",
        json=_mix(settings={"grain_duration_ms": 5}),
    ),
    RequestCase(
        "mix_grain_100000ms",
        "POST",
        f"{API}/mix",
        (422,),
        "validation_error",
        json=_mix(settings={"grain_duration_ms": 100000}),
    ),
    RequestCase(
        "mix_grain_negative",
        "POST",
        f"{API}/mix",
        (422,),
        "validation_error",
        json=_mix(settings={"grain_duration_ms": -120}),
    ),
    RequestCase(
        "mix_grain_1e308",
        "POST",
        f"{API}/mix",
        (422,),
        "validation_error",
        json=_mix(settings={"grain_duration_ms": 1e308}),
    ),
    RequestCase(
        "mix_grain_fractional",
        "POST",
        f"{API}/mix",
        (422,),
        "validation_error",
        json=_mix(settings={"grain_duration_ms": 120.5}),
    ),
    RequestCase(
        "mix_target_lufs_positive",
        "POST",
        f"{API}/mix",
        (422,),
        "validation_error",
        json=_mix(settings={"target_lufs": 10}),
    ),
    RequestCase(
        "mix_output_format_exe",
        "POST",
        f"{API}/mix",
        (422,),
        "validation_error",
        json=_mix(settings={"output_format": "exe"}),
    ),
    RequestCase(
        "mix_unknown_setting",
        "POST",
        f"{API}/mix",
        (422,),
        "validation_error",
        json=_mix(settings={"reverb": 0.5}),
    ),
    RequestCase(
        "mix_unknown_stem",
        "POST",
        f"{API}/mix",
        (422,),
        "validation_error",
        json=_mix(config={"piano": {"volume": 1.0}}),
    ),
    RequestCase(
        "mix_unknown_stem_option",
        "POST",
        f"{API}/mix",
        (422,),
        "validation_error",
        json=_mix(config={"drums": {"pan": -1}}),
    ),
    RequestCase(
        "mix_enabled_not_bool",
        "POST",
        f"{API}/mix",
        (422,),
        "validation_error",
        json=_mix(config={"drums": {"enabled": "maybe"}}),
    ),
    RequestCase(
        "mix_config_is_list",
        "POST",
        f"{API}/mix",
        (422,),
        "validation_error",
        json=_mix(config=["drums", "bass"]),
    ),
    RequestCase(
        "mix_style_sound_id_object",
        "POST",
        f"{API}/mix",
        (422,),
        "validation_error",
        json=_mix(config={"drums": {"style_sound_id": {"$ne": None}}}),
    ),
    RequestCase(
        "mix_project_id_number", "POST", f"{API}/mix", (422,), "validation_error", json=_mix(project_id=12345)
    ),
    RequestCase(
        "mix_missing_project_id",
        "POST",
        f"{API}/mix",
        (422,),
        "validation_error",
        json={"config": {}, "settings": {}},
    ),
    RequestCase("mix_body_is_array", "POST", f"{API}/mix", (422,), "validation_error", json=[]),
    RequestCase("mix_body_is_null", "POST", f"{API}/mix", (422,), "validation_error", json=None),
    # --- malformed bodies and wrong content types ---------------------------------------------------
    RequestCase(
        "mix_malformed_json",
        "POST",
        f"{API}/mix",
        (400,),
        "bad_request",
        content=b'{"project_id": "abc", "config": {',
        headers=JSON,
    ),
    RequestCase(
        "mix_json_trailing_garbage",
        "POST",
        f"{API}/mix",
        (400,),
        "bad_request",
        content=b'{"project_id": "abc"} {"again": 1}',
        headers=JSON,
    ),
    RequestCase(
        "mix_invalid_utf8",
        "POST",
        f"{API}/mix",
        (400, 422),
        content=b'{"project_id": "\xff\xfe"}',
        headers=JSON,
    ),
    RequestCase(
        "mix_deeply_nested_json",
        "POST",
        f"{API}/mix",
        (400, 413, 422),
        content=b'{"project_id": ' + b"[" * 20000 + b"]" * 20000 + b"}",
        headers=JSON,
        why="a recursive parser or validator must not turn deep nesting into a RecursionError (500)",
    ),
    RequestCase(
        "mix_json_over_64k",
        "POST",
        f"{API}/mix",
        (413,),
        "payload_too_large",
        json=_mix(config={"drums": {"style_sound_id": "a" * 70_000}}),
    ),
    RequestCase(
        "mix_text_plain_body",
        "POST",
        f"{API}/mix",
        (400, 415, 422),
        content=json.dumps(_mix()).encode(),
        headers={"Content-Type": "text/plain"},
    ),
    RequestCase(
        "mix_form_urlencoded_body",
        "POST",
        f"{API}/mix",
        (400, 415, 422),
        data={"project_id": "{own_project}"},
    ),
    RequestCase(
        "mix_multipart_body",
        "POST",
        f"{API}/mix",
        (400, 415, 422),
        files=(("file", ("song.wav", TINY_WAV_HEADER, "audio/wav")),),
    ),
    RequestCase(
        "presign_multipart_body",
        "POST",
        f"{API}/uploads",
        (400, 415, 422),
        files=(("file", ("song.wav", TINY_WAV_HEADER, "audio/wav")),),
    ),
    RequestCase(
        "base_track_json_body",
        "POST",
        f"{API}/upload/base-track",
        (400, 415, 422),
        json={"file": base64.b64encode(TINY_WAV_HEADER).decode(), "project_name": "json"},
    ),
    RequestCase(
        "style_sound_text_plain_body",
        "POST",
        f"{API}/upload/style-sound",
        (400, 415, 422),
        content=b"not a form",
        headers={"Content-Type": "text/plain"},
    ),
    RequestCase(
        "base_track_multipart_without_boundary",
        "POST",
        f"{API}/upload/base-track",
        (400, 415, 422),
        content=b'--x\r\nContent-Disposition: form-data; name="file"\r\n\r\nabc\r\n--x--\r\n',
        headers={"Content-Type": "multipart/form-data"},
    ),
    RequestCase(
        "base_track_multipart_truncated",
        "POST",
        f"{API}/upload/base-track",
        (400, 422),
        content=b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\nRIFF',
        headers={"Content-Type": "multipart/form-data; boundary=xyz"},
    ),
    # --- uploads: missing fields, empty files, limits ------------------------------------------------
    RequestCase(
        "base_track_missing_file",
        "POST",
        f"{API}/upload/base-track",
        (422,),
        "validation_error",
        data={"project_name": "no file"},
    ),
    RequestCase(
        "base_track_file_sent_as_text_field",
        "POST",
        f"{API}/upload/base-track",
        (400, 422),
        data={"file": "RIFF....WAVE", "project_name": "text"},
    ),
    RequestCase(
        "base_track_empty_file",
        "POST",
        f"{API}/upload/base-track",
        (400,),
        "bad_request",
        files=(("file", ("empty.wav", b"", "audio/wav")),),
        words=("empty",),
    ),
    RequestCase(
        "base_track_name_too_long",
        "POST",
        f"{API}/upload/base-track",
        (422,),
        "validation_error",
        data={"project_name": "n" * 1000},
        files=(("file", ("a.wav", TINY_WAV_HEADER, "audio/wav")),),
    ),
    RequestCase(
        "base_track_over_multipart_limit",
        "POST",
        f"{API}/upload/base-track",
        (413,),
        "payload_too_large",
        # Over the app's 4 MiB, under what API Gateway + Lambda carry (larger: the gateway's own 413, as
        # the local stack answers too; see tests/integration/test_reliability.py).
        files=(("file", ("big.wav", Blob(4_300_000, b"RIFF"), "audio/wav")),),
        words=("/api/v1/uploads",),
        why="API Gateway's payload limit: big files must go straight to S3",
    ),
    RequestCase(
        "style_sound_over_multipart_limit",
        "POST",
        f"{API}/upload/style-sound",
        (413,),
        "payload_too_large",
        files=(
            ("files", ("a.wav", Blob(2_200_000, b"RIFF"), "audio/wav")),
            ("files", ("b.wav", Blob(2_200_000, b"RIFF"), "audio/wav")),
        ),
        words=("/api/v1/uploads",),
    ),
    RequestCase(
        "style_sound_no_files",
        "POST",
        f"{API}/upload/style-sound",
        (422,),
        "validation_error",
        data={"x": "y"},
    ),
    RequestCase(
        "style_sound_21_files",
        "POST",
        f"{API}/upload/style-sound",
        (400,),
        "bad_request",
        files=tuple(("files", (f"s{i}.wav", TINY_WAV_HEADER, "audio/wav")) for i in range(21)),
    ),
    RequestCase(
        "style_sound_one_empty_file",
        "POST",
        f"{API}/upload/style-sound",
        (400,),
        "bad_request",
        files=(
            ("files", ("ok.wav", TINY_WAV_HEADER, "audio/wav")),
            ("files", ("empty.wav", b"", "audio/wav")),
        ),
    ),
    RequestCase(
        "stems_no_stem_fields",
        "POST",
        f"{API}/upload/stems",
        (400,),
        "bad_request",
        data={"project_name": "x"},
    ),
    RequestCase(
        "stems_unknown_stem_field_only",
        "POST",
        f"{API}/upload/stems",
        (400,),
        "bad_request",
        files=(("piano", ("p.wav", TINY_WAV_HEADER, "audio/wav")),),
    ),
    RequestCase(
        "stems_empty_stem",
        "POST",
        f"{API}/upload/stems",
        (400,),
        "bad_request",
        files=(("drums", ("d.wav", b"", "audio/wav")),),
    ),
    RequestCase(
        "presign_size_negative", "POST", f"{API}/uploads", (422,), "validation_error", json=_presign(size=-1)
    ),
    RequestCase(
        "presign_size_zero", "POST", f"{API}/uploads", (422,), "validation_error", json=_presign(size=0)
    ),
    RequestCase(
        "presign_size_over_limit",
        "POST",
        f"{API}/uploads",
        (413,),
        "payload_too_large",
        json=_presign(size=10 * 1024**3),
    ),
    RequestCase("presign_size_10e30", "POST", f"{API}/uploads", (413, 422), json=_presign(size=10**30)),
    RequestCase("presign_size_1e308_float", "POST", f"{API}/uploads", (413, 422), json=_presign(size=1e308)),
    RequestCase(
        "presign_size_string", "POST", f"{API}/uploads", (422,), "validation_error", json=_presign(size="big")
    ),
    RequestCase(
        "presign_missing_size",
        "POST",
        f"{API}/uploads",
        (422,),
        "validation_error",
        json=_presign(size=MISSING),
    ),
    RequestCase(
        "presign_content_type_html",
        "POST",
        f"{API}/uploads",
        (422,),
        "validation_error",
        json=_presign(content_type="text/html"),
    ),
    RequestCase(
        "presign_content_type_header_injection",
        "POST",
        f"{API}/uploads",
        (422,),
        "validation_error",
        json=_presign(content_type="audio/wav\r\nx-amz-acl: public-read"),
    ),
    RequestCase(
        "presign_kind_stem", "POST", f"{API}/uploads", (422,), "validation_error", json=_presign(kind="stem")
    ),
    RequestCase(
        "presign_filename_empty",
        "POST",
        f"{API}/uploads",
        (422,),
        "validation_error",
        json=_presign(filename=""),
    ),
    RequestCase(
        "presign_filename_5000_chars",
        "POST",
        f"{API}/uploads",
        (422,),
        "validation_error",
        json=_presign(filename="a" * 5000 + ".wav"),
    ),
    RequestCase(
        "presign_extra_field_key",
        "POST",
        f"{API}/uploads",
        (422,),
        "validation_error",
        json=_presign(key="dev/projects/x/source.flac"),
        why="a client must not choose its S3 key",
    ),
    RequestCase(
        "idempotency_key_too_long",
        "POST",
        f"{API}/uploads",
        (422,),
        "validation_error",
        json=_presign(),
        headers={"Idempotency-Key": "k" * 300},
    ),
    # --- pagination -----------------------------------------------------------------------------------
    RequestCase(
        "projects_cursor_garbage",
        "GET",
        f"{API}/projects",
        (400,),
        "bad_request",
        params={"cursor": "!!!%%%"},
    ),
    RequestCase(
        "projects_cursor_not_json",
        "GET",
        f"{API}/projects",
        (400,),
        "bad_request",
        params={"cursor": base64.urlsafe_b64encode(b"\x00\x01binary").decode()},
    ),
    RequestCase(
        "projects_cursor_traversal_id",
        "GET",
        f"{API}/projects",
        (400,),
        "bad_request",
        params={"cursor": _cursor({"id": "../../other-tenant"})},
    ),
    RequestCase(
        "library_cursor_json_list",
        "GET",
        f"{API}/library",
        (400,),
        "bad_request",
        params={"cursor": _cursor(["0" * 32])},
    ),
    RequestCase(
        "mixes_cursor_dynamo_key_injection",
        "GET",
        f"{API}/mixes",
        (400,),
        "bad_request",
        params={"cursor": _cursor({"id": {"S": "x"}, "tenant_id": "victim"})},
    ),
    RequestCase(
        "library_cursor_too_long",
        "GET",
        f"{API}/library",
        (422,),
        "validation_error",
        params={"cursor": "A" * 600},
    ),
    RequestCase(
        "projects_limit_0", "GET", f"{API}/projects", (422,), "validation_error", params={"limit": "0"}
    ),
    RequestCase(
        "projects_limit_101", "GET", f"{API}/projects", (422,), "validation_error", params={"limit": "101"}
    ),
    RequestCase(
        "projects_limit_negative",
        "GET",
        f"{API}/projects",
        (422,),
        "validation_error",
        params={"limit": "-5"},
    ),
    RequestCase(
        "library_limit_word", "GET", f"{API}/library", (422,), "validation_error", params={"limit": "all"}
    ),
    RequestCase(
        "mixes_limit_10e30",
        "GET",
        f"{API}/mixes",
        (422,),
        "validation_error",
        params={"limit": "1" + "0" * 30},
    ),
    # --- ids of deleted, foreign, missing or malformed objects -> 404 ---------------------------------
    RequestCase("project_get_deleted", "GET", f"{API}/projects/{{deleted_project}}", (404,), "not_found"),
    RequestCase(
        "project_status_deleted", "GET", f"{API}/projects/{{deleted_project}}/status", (404,), "not_found"
    ),
    RequestCase(
        "project_delete_deleted", "DELETE", f"{API}/projects/{{deleted_project}}", (404,), "not_found"
    ),
    RequestCase(
        "project_stem_deleted", "GET", f"{API}/projects/{{deleted_project}}/stems/drums", (404,), "not_found"
    ),
    RequestCase("project_get_foreign", "GET", f"{API}/projects/{{foreign_project}}", (404,), "not_found"),
    RequestCase(
        "project_delete_foreign", "DELETE", f"{API}/projects/{{foreign_project}}", (404,), "not_found"
    ),
    RequestCase("project_get_missing", "GET", f"{API}/projects/{{missing_id}}", (404,), "not_found"),
    RequestCase(
        "project_get_traversal", "GET", f"{API}/projects/..%2F..%2Fetc%2Fpasswd", (404,), "not_found"
    ),
    RequestCase("project_get_injection", "GET", f"{API}/projects/'%20OR%201=1%20--", (404,), "not_found"),
    RequestCase("project_get_uppercase_id", "GET", f"{API}/projects/{'AB' * 16}", (404,), "not_found"),
    RequestCase(
        "project_stem_unknown", "GET", f"{API}/projects/{{own_project}}/stems/piano", (404,), "not_found"
    ),
    RequestCase(
        "project_stem_traversal",
        "GET",
        f"{API}/projects/{{own_project}}/stems/..%2Fsource.flac",
        (404,),
        "not_found",
    ),
    RequestCase(
        "project_stem_not_ready", "GET", f"{API}/projects/{{own_project}}/stems/drums", (404,), "not_found"
    ),
    RequestCase("sound_get_deleted", "GET", f"{API}/library/{{deleted_sound}}", (404,), "not_found"),
    RequestCase("sound_delete_deleted", "DELETE", f"{API}/library/{{deleted_sound}}", (404,), "not_found"),
    RequestCase("sound_get_foreign", "GET", f"{API}/library/{{foreign_sound}}", (404,), "not_found"),
    RequestCase("sound_delete_foreign", "DELETE", f"{API}/library/{{foreign_sound}}", (404,), "not_found"),
    RequestCase("mix_get_missing", "GET", f"{API}/mix/{{missing_id}}", (404,), "not_found"),
    RequestCase("mix_download_missing", "GET", f"{API}/mix/{{missing_id}}/download", (404,), "not_found"),
    RequestCase("mix_get_malformed_id", "GET", f"{API}/mix/%00%0a", (404,), "not_found"),
    RequestCase(
        "mix_for_deleted_project",
        "POST",
        f"{API}/mix",
        (404,),
        "not_found",
        json=_mix(project_id="{deleted_project}"),
    ),
    RequestCase(
        "mix_for_foreign_project",
        "POST",
        f"{API}/mix",
        (404,),
        "not_found",
        json=_mix(project_id="{foreign_project}"),
    ),
    RequestCase(
        "mix_for_missing_project",
        "POST",
        f"{API}/mix",
        (404,),
        "not_found",
        json=_mix(project_id="{missing_id}"),
    ),
    RequestCase(
        "mix_for_project_not_ready",
        "POST",
        f"{API}/mix",
        (409,),
        "conflict",
        json=_mix(),
        why="a render needs stems: 409 until the project is ready, nothing queued",
    ),
    # --- methods and routes ---------------------------------------------------------------------------
    RequestCase("put_on_projects", "PUT", f"{API}/projects", (405,), "method_not_allowed"),
    RequestCase("patch_on_mix", "PATCH", f"{API}/mix/{{missing_id}}", (405,), "method_not_allowed"),
    RequestCase("unknown_route", "GET", f"{API}/admin/tenants", (404,), "not_found"),
]


# Every key the service may write (DESIGN.md §5), built from ids only: after any corpus, every key in the
# bucket must match one of these, and nothing may stay under uploads/.
_ID = r"[0-9a-f]{32}"
_TENANT = r"[a-z0-9][a-z0-9-]{0,62}"
_STEM = r"(drums|bass|vocals|other)"
S3_KEY_PATTERNS = [
    re.compile(rf"^(?P<tenant>{_TENANT})/(?P<kind>projects)/(?P<id>{_ID})/source\.flac$"),
    re.compile(rf"^(?P<tenant>{_TENANT})/(?P<kind>projects)/(?P<id>{_ID})/stems/{_STEM}\.flac$"),
    re.compile(rf"^(?P<tenant>{_TENANT})/(?P<kind>projects)/(?P<id>{_ID})/analysis/{_STEM}\.json$"),
    re.compile(rf"^(?P<tenant>{_TENANT})/(?P<kind>projects)/(?P<id>{_ID})/checkpoints/[A-Za-z0-9._-]+$"),
    re.compile(rf"^(?P<tenant>{_TENANT})/(?P<kind>library)/(?P<id>{_ID})/(sound\.flac|analysis\.json)$"),
    re.compile(rf"^(?P<tenant>{_TENANT})/(?P<kind>mixes)/(?P<id>{_ID})/mix\.(wav|flac|mp3)$"),
]
