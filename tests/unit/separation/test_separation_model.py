"""Offline model loading: fail fast with an actionable message, load what is there."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import yaml
from demucs.apply import BagOfModels
from demucs.hdemucs import HDemucs
from demucs.htdemucs import HTDemucs

from audiomixer.separation.model import (
    ModelUnavailableError,
    SeparationError,
    build_random_htdemucs_ft,
    check_model_available,
    load_model,
    model_segment_s,
)


@pytest.fixture
def empty_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "torch-hub"))
    yield
    torch.hub.set_dir(old)


def test_missing_weights_fail_fast_with_actionable_message(empty_caches: None) -> None:
    start = time.perf_counter()
    with pytest.raises(ModelUnavailableError) as info:
        load_model("htdemucs_ft")
    assert time.perf_counter() - start < 2.0  # not Demucs' ~23 s of hub retries
    message = str(info.value)
    assert "htdemucs_ft" in message and "DEMUCS_REPO" in message and "DEMUCS_MODEL" in message
    assert isinstance(info.value, SeparationError)


def test_repo_missing_or_incomplete(tmp_path: Path) -> None:
    check_model_available("demucs_unittest", tmp_path / "nope")  # built in code, needs no files
    with pytest.raises(ModelUnavailableError, match="does not exist"):
        check_model_available("htdemucs_ft", tmp_path / "nope")
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "htdemucs_ft.yaml").write_text(yaml.safe_dump({"models": ["aaaa1111", "bbbb2222"]}))
    (repo / "aaaa1111-0123abcd.th").write_bytes(b"")
    with pytest.raises(ModelUnavailableError, match=r"bbbb2222\.th"):
        check_model_available("htdemucs_ft", repo)


def test_loads_a_bag_from_a_local_repo(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    torch.manual_seed(3)
    small = HDemucs(channels=4, sources=["drums", "bass", "other", "vocals"])
    kwargs = {"channels": 4, "sources": ["drums", "bass", "other", "vocals"]}
    # The package layout demucs.states.serialize_model writes (it needs omegaconf, which we don't ship).
    torch.save(
        {"klass": HDemucs, "args": [], "kwargs": kwargs, "state": small.state_dict()}, repo / "cafe0001.th"
    )
    (repo / "mybag.yaml").write_text(yaml.safe_dump({"models": ["cafe0001"], "segment": 10}))
    bag = load_model("mybag", repo, device="cpu")
    assert isinstance(bag, BagOfModels) and not bag.training
    loaded = bag.models[0]
    for a, b in zip(small.state_dict().values(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert model_segment_s(bag) == 10
    single = load_model("cafe0001", repo)
    assert isinstance(single, HDemucs)


def test_unittest_model_is_deterministic() -> None:
    a, b = load_model("demucs_unittest"), load_model("demucs_unittest")
    before = torch.random.get_rng_state()
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert torch.equal(before, torch.random.get_rng_state())
    assert a.samplerate == 44_100 and a.audio_channels == 2


def test_random_htdemucs_ft_has_the_real_architecture() -> None:
    bag = build_random_htdemucs_ft("cpu")
    assert isinstance(bag, BagOfModels) and len(bag.models) == 4
    assert all(isinstance(m, HTDemucs) for m in bag.models)
    assert list(bag.sources) == ["drums", "bass", "other", "vocals"]
    assert abs(model_segment_s(bag) - 7.8) < 1e-9
    assert bag.weights == [[1.0 if i == j else 0.0 for j in range(4)] for i in range(4)]
    params = sum(p.numel() for p in bag.models[0].parameters())
    assert 40e6 < params < 43e6  # htdemucs: 41.4 M parameters per model
