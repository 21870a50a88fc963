"""Demucs separation: offline model loading, chunked restartable separation, the Batch job core.

Imports torch and demucs: only the gpu_batch image and the offline CLI import this package."""

from audiomixer.separation.checkpoints import CheckpointStore, LocalCheckpointStore, S3CheckpointStore
from audiomixer.separation.chunked import SeparationResult, apply_model_whole, separate_to_files
from audiomixer.separation.job import run_separation_job, separate_file, stem_keys
from audiomixer.separation.model import (
    ModelUnavailableError,
    SeparationError,
    build_random_htdemucs_ft,
    check_model_available,
    load_model,
)

__all__ = [
    "CheckpointStore",
    "LocalCheckpointStore",
    "ModelUnavailableError",
    "S3CheckpointStore",
    "SeparationError",
    "SeparationResult",
    "apply_model_whole",
    "build_random_htdemucs_ft",
    "check_model_available",
    "load_model",
    "run_separation_job",
    "separate_file",
    "separate_to_files",
    "stem_keys",
]
