"""Request and response models of the HTTP API (the seed's shapes, plus what large files need)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, StringConstraints, model_validator

from audiomixer.mix_settings import GRAIN_MS_DEFAULT, MixSettings, OutputFormat, StemConfig
from audiomixer.settings import STEMS
from audiomixer.stem_sets import STEM_NAME
from audiomixer.store.models import MixStatus, ProjectStatus, SoundStatus

UploadKind = Literal["base-track", "style-sound", "stems"]

_ID_EXAMPLE = "3f2b8c1d9e4a4b7c8d6e5f4a3b2c1d0e"
NAME_MAX = 200
StemName = Annotated[str, StringConstraints(pattern=STEM_NAME.pattern)]
MODEL_DESCRIPTION = (
    "Demucs model that separates the song: htdemucs_ft (default), htdemucs, htdemucs_6s (adds guitar "
    "and piano stems), mdx_extra, ... any Demucs pretrained name; an unknown name is a 422 listing them"
)
TWO_STEMS_DESCRIPTION = (
    "two-stem mode, as `demucs --two-stems`: `vocals` gives the stems vocals and no_vocals (the rest)"
)
ModelName = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]


class Health(BaseModel):
    status: Literal["ok"] = "ok"


# --- uploads ---


class UploadAccepted(BaseModel):
    project_id: str = Field(examples=[_ID_EXAMPLE])
    status: Literal[ProjectStatus.QUEUED] = ProjectStatus.QUEUED
    message: str = Field(examples=["Upload received; separation will start shortly"])


class SoundAccepted(BaseModel):
    sound_id: str = Field(examples=[_ID_EXAMPLE])
    name: str = Field(examples=["kick-808"])
    status: SoundStatus = SoundStatus.QUEUED


class StyleSoundsAccepted(BaseModel):
    sounds: list[SoundAccepted]
    count: int
    message: str


class PresignRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "filename": "song.flac",
                    "content_type": "audio/flac",
                    "size": 41_943_040,
                    "kind": "base-track",
                    "project_name": "My song",
                }
            ]
        },
    )

    filename: str = Field(min_length=1, max_length=1024, description="kept only as a display name")
    content_type: str = Field(
        min_length=3,
        max_length=127,
        # Browsers label WebM, MP4 and Matroska files video/* even when they hold only audio.
        pattern=r"^(audio/[A-Za-z0-9.+-]+|application/(octet-stream|ogg)|video/(ogg|webm|mp4|x-matroska))$",
        description="audio/*, application/ogg, application/octet-stream or video/ogg, video/webm, video/mp4, "
        "video/x-matroska (containers that may hold only audio); the upload must send the same",
    )
    size: int = Field(
        ge=1, description="exact size in bytes of the file to upload (kind `stems`: their total)"
    )
    kind: UploadKind = "base-track"
    project_name: str | None = Field(default=None, max_length=NAME_MAX)
    model: ModelName | None = Field(default=None, description=MODEL_DESCRIPTION + " (base-track only)")
    two_stems: StemName | None = Field(default=None, description=TWO_STEMS_DESCRIPTION + " (base-track only)")
    stems: dict[str, int] | None = Field(
        default=None,
        description="kind `stems` only: stem -> exact size in bytes of its file, 1 to 4 of "
        f"{', '.join(STEMS)}; one form per stem comes back, and the project is analysed once all arrived",
        examples=[{"drums": 41_943_040, "bass": 41_943_040, "vocals": 41_943_040, "other": 41_943_040}],
    )

    @model_validator(mode="after")
    def _stems_fit_the_kind(self) -> PresignRequest:
        if (self.kind == "stems") != (self.stems is not None):
            raise ValueError("`stems` (stem -> size) goes with kind `stems`, and only with it")
        if self.stems is not None:
            unknown = sorted(set(self.stems) - set(STEMS))
            if unknown or not self.stems:
                raise ValueError(
                    f"stems must be 1 to 4 of {', '.join(STEMS)}; got {', '.join(unknown) or 'none'}"
                )
            if any(size < 1 for size in self.stems.values()) or sum(self.stems.values()) != self.size:
                raise ValueError("each stem's size must be at least 1 byte, and `size` their total")
        return self


class PresignedPost(BaseModel):
    url: str = Field(description="POST a multipart form here: every field below, then `file` last")
    fields: dict[str, str]


class PresignResponse(BaseModel):
    id: str = Field(
        description="the new project id (base-track, stems) or sound id (style-sound)", examples=[_ID_EXAMPLE]
    )
    kind: UploadKind
    upload: PresignedPost | None = Field(description="the form for the file; null for kind `stems`")
    stem_uploads: dict[str, PresignedPost] | None = Field(
        default=None, description="kind `stems`: one form per announced stem; null otherwise"
    )
    expires_in: int = Field(description="seconds the form stays valid")
    max_bytes: int = Field(description="the most bytes S3 accepts for this upload")


# --- projects ---

STEMS_DESCRIPTION = (
    "the project's stems (the set its model gives: 4, 6 with guitar and piano, or 2 in two-stem mode) "
    "-> true once the stem is stored"
)
_STEMS_EXAMPLE = {"drums": True, "bass": True, "vocals": True, "other": True}


class ProjectStatusResponse(BaseModel):
    project_id: str
    status: ProjectStatus
    progress: int = Field(ge=0, le=100)
    stems: dict[str, bool] = Field(description=STEMS_DESCRIPTION, examples=[_STEMS_EXAMPLE])
    stage: str
    error: str | None = Field(description="failure reason, or null")
    message: str


class ProjectSummary(BaseModel):
    project_id: str
    name: str
    status: ProjectStatus
    stage: str
    progress: int = Field(ge=0, le=100)
    source_kind: Literal["song", "stems"]
    error: str | None
    created_at: datetime
    updated_at: datetime


class ProjectDetail(ProjectSummary):
    stems: dict[str, bool] = Field(description=STEMS_DESCRIPTION, examples=[_STEMS_EXAMPLE])
    model: str | None = Field(description="the Demucs model chosen; null: the service's default")
    two_stems: str | None = Field(description="the two-stem mode chosen (e.g. vocals), or null")
    stem_urls: dict[str, str] = Field(
        description="stem -> download link (answers 307 to a presigned URL), ready stems only",
        examples=[{"drums": f"/api/v1/projects/{_ID_EXAMPLE}/stems/drums"}],
    )
    duration_s: float | None
    size_bytes: int
    analysis: dict[str, Any] | None


class ProjectList(BaseModel):
    items: list[ProjectSummary]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last page")


# --- library ---


class SoundSummary(BaseModel):
    sound_id: str
    name: str
    status: SoundStatus
    stage: str
    error: str | None
    duration_s: float | None
    created_at: datetime
    updated_at: datetime


class SoundDetail(SoundSummary):
    size_bytes: int
    analysis: dict[str, Any] | None = Field(description="summary of the sound's grain table")


class SoundList(BaseModel):
    items: list[SoundSummary]
    next_cursor: str | None


# --- mixes ---


class MixConfig(RootModel[dict[StemName, StemConfig | None]]):
    """Per-stem settings, keyed by the project's own stems (drums, bass, vocals, other; guitar and piano
    with htdemucs_6s; vocals and no_vocals in two-stem mode); a stem left out is mixed unchanged at
    volume 1.0. A stem the project does not have is a 422."""

    root: dict[StemName, StemConfig | None] = Field(default_factory=dict)

    def resolved(self, stems: list[str]) -> dict[str, dict[str, Any]]:
        """Every one of `stems` (the project's) with its settings, defaults for those left out."""
        return {stem: (self.root.get(stem) or StemConfig()).model_dump() for stem in stems}


class MixRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "project_id": _ID_EXAMPLE,
                    "config": {
                        "drums": {
                            "enabled": True,
                            "style_sound_id": "0123456789abcdef0123456789abcdef",
                            "volume": 1.0,
                        },
                        "vocals": {"enabled": False},
                    },
                    "settings": {
                        "grain_duration_ms": GRAIN_MS_DEFAULT,
                        "use_pitch_mapping": True,
                        "use_envelope": True,
                    },
                }
            ]
        },
    )

    project_id: str
    config: MixConfig = Field(default_factory=MixConfig)
    settings: MixSettings = Field(default_factory=MixSettings)


class MixAccepted(BaseModel):
    mix_id: str = Field(examples=[_ID_EXAMPLE])
    status: Literal[MixStatus.QUEUED] = MixStatus.QUEUED


class MixStatusResponse(BaseModel):
    mix_id: str
    project_id: str
    status: MixStatus
    progress: int = Field(ge=0, le=100)
    error: str | None
    download_url: str | None = Field(description="set once completed; answers 307 to a presigned URL")
    output_format: OutputFormat
    created_at: datetime
    updated_at: datetime


class MixList(BaseModel):
    items: list[MixStatusResponse]
    next_cursor: str | None


class WsTicket(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"ticket": "wst_" + "x" * 43, "expires_in": 60}]}
    )

    ticket: str = Field(description="pass as `?ticket=` when opening the WebSocket; works once")
    expires_in: int = Field(description="seconds the ticket stays valid")
