"""Loading the refiner from local folders or the Hugging Face cache; one line per missing piece."""

from __future__ import annotations

import shutil

import pytest
import torch
from diffusers import LTX2VideoTransformer3DModel
from helpers import tiny_refiner

from sana_wm.errors import InputError
from sana_wm.inference.refiner import Refiner
from sana_wm.inference.weights import OFFICIAL_REPO, MissingWeightsError, resolve_refiner_weights

COMMIT = "89abcdef0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="module")
def saved(parts, tmp_path_factory):
    """The tiny parts in the release layout: refiner/{transformer,connectors,text_encoder (+ tokenizer)}."""
    root = tmp_path_factory.mktemp("refiner_weights") / "refiner"
    # The release stores diffusers' LTX2VideoTransformer3DModel, audio stream included.
    source = tiny_refiner.transformer()
    release = LTX2VideoTransformer3DModel.from_config(source.config)
    release.load_state_dict(source.state_dict(), strict=True)
    release.save_pretrained(root / "transformer")
    parts.connectors.save_pretrained(root / "connectors")
    parts.gemma.save_pretrained(root / "text_encoder")
    parts.tokenizer.save_pretrained(root / "text_encoder")
    return root


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


def _refine(refiner, z: torch.Tensor) -> torch.Tensor:
    refiner.text_max_length = tiny_refiner.TEXT_LENGTH
    return refiner(z, tiny_refiner.PROMPT, mode="chunk_causal", progress=False)


def test_local_folders_load_the_same_refiner(saved, refiner) -> None:
    paths = resolve_refiner_weights(saved, saved / "text_encoder", local_files_only=True)
    loaded = Refiner.from_paths(paths, device="cpu", dtype=torch.float32)
    assert not any("audio" in name for name, _ in loaded.transformer.named_parameters())
    z = tiny_refiner.latents(5, seed=18)
    assert torch.equal(_refine(loaded, z), _refine(refiner, z))


def test_the_release_layout_in_the_cache_loads_with_no_arguments(saved, refiner, hub_cache) -> None:
    snapshot = hub_cache / f"models--{OFFICIAL_REPO.replace('/', '--')}"
    (snapshot / "refs").mkdir(parents=True)
    (snapshot / "refs" / "main").write_text(COMMIT)
    shutil.copytree(saved, snapshot / "snapshots" / COMMIT / "refiner")
    paths = resolve_refiner_weights(local_files_only=True)
    assert paths.transformer.parts[-2:] == ("refiner", "transformer") and COMMIT in str(paths.transformer)
    assert paths.text_encoder == paths.tokenizer and paths.text_encoder.name == "text_encoder"
    loaded = Refiner.from_paths(paths, device="cpu", dtype=torch.float32)
    z = tiny_refiner.latents(5, seed=19)
    assert torch.equal(_refine(loaded, z), _refine(refiner, z))


def test_missing_pieces_are_listed_one_per_line(tmp_path, hub_cache) -> None:
    with pytest.raises(MissingWeightsError) as err:
        resolve_refiner_weights(local_files_only=True)
    assert [(m.what, m.flag) for m in err.value.missing] == [
        ("refiner/transformer/", "--refiner_checkpoint"),
        ("refiner/connectors/", "--refiner_checkpoint"),
        ("refiner/text_encoder/", "--refiner_gemma_root"),
    ]
    lines = str(err.value).splitlines()
    assert lines[0] == (
        f"missing refiner/transformer/ from {OFFICIAL_REPO} (not in the Hugging Face cache, offline mode): "
        "pass --refiner_checkpoint DIR"
    )
    with pytest.raises(MissingWeightsError) as err:
        resolve_refiner_weights(tmp_path / "nowhere", tmp_path / "gemma", local_files_only=True)
    assert [m.flag for m in err.value.missing] == ["--refiner_checkpoint"] * 2 + ["--refiner_gemma_root"]
    last = str(err.value).splitlines()[2]
    assert "--refiner_gemma_root" in last and str(tmp_path / "gemma") in last


def test_a_single_checkpoint_file_is_an_input_error(tmp_path) -> None:
    with pytest.raises(
        InputError, match=r"^--refiner_checkpoint: .*refiner.safetensors is a file; pass the folder"
    ):
        resolve_refiner_weights(tmp_path / "refiner.safetensors", tmp_path, local_files_only=True)
