"""Tiny Demucs models saved offline into a DEMUCS_REPO folder, exactly as `audiomixer.separation.model`
loads a downloaded one (`{name}.yaml` naming `{sig}.th` packages). Random weights, never a download: the
stems are poor, but their set (6 sources with guitar and piano) and their exact sum are what is tested."""

from __future__ import annotations

import hashlib
from pathlib import Path

SIX_SOURCES = ["drums", "bass", "other", "vocals", "guitar", "piano"]


def save_tiny_model(
    repo: Path, name: str, sources: list[str], seed: int = 0, segment_s: float | None = None
) -> Path:
    """Save an HDemucs with 4 channels (demucs_unittest's size) and these `sources` as model `name`;
    `segment_s` shortens its 40 s segment (so a short song spans several separation chunks)."""
    import torch
    import yaml
    from demucs.hdemucs import HDemucs
    from demucs.states import get_state

    repo.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        extra = {"segment": segment_s} if segment_s is not None else {}
        model = HDemucs(channels=4, sources=list(sources), **extra)
    args, kwargs = model._init_args_kwargs  # recorded by demucs' @capture_init
    sig = hashlib.sha256(f"{name}:{','.join(sources)}:{seed}".encode()).hexdigest()[:8]
    package = {
        "klass": HDemucs,
        "args": args,
        "kwargs": kwargs,
        "state": get_state(model, None, half=False),
        "training_args": {},
    }
    torch.save(package, repo / f"{sig}.th")
    (repo / f"{name}.yaml").write_text(yaml.safe_dump({"models": [sig]}))
    return repo
