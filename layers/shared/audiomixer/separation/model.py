"""Loading Demucs models offline, failing fast when the weights are not on this machine.

`demucs.pretrained.get_model` tries the HuggingFace hub and then a legacy URL with retries (~23 s offline)
before failing, so we look for the files first and load them ourselves from wherever they are:
a `DEMUCS_REPO` folder (`{name}.yaml` bag plus `{sig}.th` / `{sig}-{checksum}.th` / `{sig}.safetensors`),
the torch hub cache (legacy downloads) or the HuggingFace cache (Demucs 4.1 downloads).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeAlias

import torch
import yaml
from demucs.apply import BagOfModels
from demucs.demucs import Demucs
from demucs.hdemucs import HDemucs
from demucs.htdemucs import HTDemucs

logger = logging.getLogger(__name__)

DemucsModel: TypeAlias = BagOfModels | Demucs | HDemucs | HTDemucs

UNITTEST_MODEL = "demucs_unittest"
# Source order of every official 4-source Demucs model (model.sources); our STEMS order differs.
DEMUCS_SOURCES = ["drums", "bass", "other", "vocals"]


class SeparationError(RuntimeError):
    """Base class of everything the separation stage raises on purpose."""


class ModelUnavailableError(SeparationError):
    """The requested Demucs weights are not on this machine."""


def resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _remote_root() -> Path:
    import demucs.pretrained

    return Path(demucs.pretrained.REMOTE_ROOT)


def _unavailable(name: str, detail: str) -> ModelUnavailableError:
    return ModelUnavailableError(
        f"Demucs model '{name}' is not available offline ({detail}). Download its weights on a machine "
        f"with internet (python -m demucs -n {name} any.wav, or copy the files from the torch hub / "
        "HuggingFace cache) into a folder and set DEMUCS_REPO to that folder, or set DEMUCS_MODEL to a "
        "model you have."
    )


def _bag_from_yaml(path: Path) -> dict[str, Any]:
    with open(path) as fh:
        bag = yaml.safe_load(fh)
    if not isinstance(bag, dict) or not isinstance(bag.get("models"), list):
        raise SeparationError(f"{path} is not a Demucs bag-of-models file (no 'models' list)")
    return bag


def _make_bag(models: list[Any], bag: dict[str, Any] | None) -> DemucsModel:
    if bag is None:
        single: DemucsModel = models[0]
        return single
    return BagOfModels(models, bag.get("weights"), bag.get("segment"))


# ---------------------------------------------------------------- local repo (DEMUCS_REPO)


def _repo_files(repo: Path, sig: str) -> Path | None:
    for file in sorted(repo.iterdir()):
        if file.suffix == ".th" and (file.stem == sig or file.stem.rsplit("-", 1)[0] == sig):
            return file
        if file.suffix == ".safetensors" and file.stem == sig:
            return file
    return None


def _plan_repo(name: str, repo: Path) -> tuple[dict[str, Any] | None, list[Path]]:
    if not repo.is_dir():
        raise _unavailable(name, f"DEMUCS_REPO folder {repo} does not exist")
    yaml_file = repo / f"{name}.yaml"
    if yaml_file.is_file():
        bag: dict[str, Any] | None = _bag_from_yaml(yaml_file)
        assert bag is not None
        sigs = [str(s) for s in bag["models"]]
    else:
        bag, sigs = None, [name]
    files = {sig: _repo_files(repo, sig) for sig in sigs}
    missing = [sig for sig, f in files.items() if f is None]
    if missing:
        what = f"{yaml_file.name} lists" if bag is not None else f"no {name}.yaml and no"
        raise _unavailable(name, f"{what} weight files {', '.join(s + '.th' for s in missing)} in {repo}")
    return bag, [f for f in files.values() if f is not None]


def _load_weight_file(path: Path) -> Any:
    from demucs.repo import check_checksum
    from demucs.states import load_model as load_package

    if path.suffix == ".safetensors":
        from demucs.hf import load_safetensors_model

        return load_safetensors_model(path)
    if "-" in path.stem:
        check_checksum(path, path.stem.rsplit("-", 1)[1])
    return load_package(path)


# ---------------------------------------------------------------- caches (no repo)


def _plan_torch_hub(name: str) -> tuple[dict[str, Any] | None, list[Path]] | None:
    from demucs.pretrained import _parse_remote_files

    remote = _remote_root()
    urls = _parse_remote_files(remote / "files.txt")
    yaml_file = remote / f"{name}.yaml"
    if yaml_file.is_file():
        bag: dict[str, Any] | None = _bag_from_yaml(yaml_file)
        assert bag is not None
        sigs = [str(s) for s in bag["models"]]
    elif name in urls:
        bag, sigs = None, [name]
    else:
        return None
    checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    files = [checkpoints / urls[sig].rsplit("/", 1)[1] for sig in sigs if sig in urls]
    if len(files) != len(sigs) or not all(f.is_file() for f in files):
        return None
    return bag, files


def _hf_repo_id(name: str) -> tuple[str, str]:
    from demucs.hf import DEFAULT_NAMESPACE, hf_repo_name

    namespace = DEFAULT_NAMESPACE
    if "/" in name:
        namespace, name = name.split("/", 1)
    return f"{namespace}/{hf_repo_name(name)}", name


def _plan_hf_cache(name: str) -> tuple[dict[str, Any] | None, list[Path]] | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    repo_id, short = _hf_repo_id(name.removeprefix("hf://"))
    found = try_to_load_from_cache(repo_id, f"{short}.yaml")
    if not isinstance(found, str):
        return None
    bag = _bag_from_yaml(Path(found))
    files: list[Path] = []
    for sig in bag["models"]:
        weights = try_to_load_from_cache(repo_id, f"{sig}.safetensors")
        if not isinstance(weights, str):
            return None
        files.append(Path(weights))
    return bag, files


# ---------------------------------------------------------------- public


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    # Random-weight models must be identical across processes so that a resumed job (new Batch attempt)
    # continues with the same weights; fork_rng keeps the caller's RNG state untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def check_model_available(name: str, repo: Path | None = None) -> None:
    """Raise ModelUnavailableError at once if `name` cannot be loaded without network."""
    if name != UNITTEST_MODEL:
        _plan(name, repo)


def _plan(name: str, repo: Path | None) -> tuple[dict[str, Any] | None, list[Path]]:
    if repo is not None:
        return _plan_repo(name, Path(repo))
    plan = _plan_hf_cache(name) or _plan_torch_hub(name)
    if plan is None:
        raise _unavailable(
            name, f"no weights in the HuggingFace cache or in {Path(torch.hub.get_dir()) / 'checkpoints'}"
        )
    return plan


def load_model(name: str, repo: Path | None = None, device: str | None = None) -> DemucsModel:
    """A Demucs model (single or BagOfModels) in eval mode on `device` (auto: cuda if available)."""
    dev = resolve_device(device)
    model: DemucsModel
    if name == UNITTEST_MODEL:
        with _seeded(0):
            model = HDemucs(channels=4, sources=DEMUCS_SOURCES)
    else:
        bag, files = _plan(name, repo)
        logger.info("loading Demucs model %s from %s", name, ", ".join(str(f) for f in files))
        model = _make_bag([_load_weight_file(f) for f in files], bag)
    model.to(dev)
    model.eval()
    return model


def build_random_htdemucs_ft(device: str | None = None, seed: int = 0) -> BagOfModels:
    """htdemucs_ft's architecture with random weights: four HTDemucs (the defaults of demucs 4's
    HTDemucs plus bottom_channels=512 and a 7.8 s training segment, as in the published checkpoints),
    each one selected for one source by the bag's identity weights. Same cost as the real model."""
    with _seeded(seed):
        models = [
            HTDemucs(sources=list(DEMUCS_SOURCES), bottom_channels=512, segment=Fraction(39, 5))
            for _ in range(4)
        ]
    weights = [[1.0 if i == j else 0.0 for j in range(4)] for i in range(4)]
    bag = BagOfModels(models, weights)
    bag.to(resolve_device(device))
    bag.eval()
    return bag


def sub_models(model: DemucsModel) -> list[Any]:
    return list(model.models) if isinstance(model, BagOfModels) else [model]


def model_attr(model: DemucsModel, name: str) -> Any:
    """samplerate, audio_channels, sources, segment: plain attributes that torch's stubs type as Module."""
    return getattr(model, name)


def model_segment_s(model: DemucsModel) -> float:
    """The segment (seconds) Demucs' own `apply_model(split=True)` would use for every model in the bag."""
    return float(min(Fraction(model_attr(sub, "segment")) for sub in sub_models(model)))
