"""The chunk-causal demo patch: base + patch loads as the trained model; a changed base, a key the base lacks
and a trained model that differs outside the patch are refused."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from sana_wm.errors import InputError
from sana_wm.inference.demo_patch import (
    PATCH_FILE,
    PATCH_FORMAT,
    chunk_causal_demo_available,
    file_sha256,
    load_chunk_causal_demo_transformer,
    merged_state,
    read_patch,
    write_patch,
)
from sana_wm.models import SanaWMConfig, SanaWMTransformer, save_transformer

BASE = SanaWMConfig(
    in_channels=4,
    hidden_size=32,
    depth=2,
    head_dim=16,
    cross_attn_heads=2,
    caption_channels=8,
    mlp_ratio=1.0,
    softmax_every_n=2,
    plucker_blocks=2,
)
CAUSAL = dataclasses.replace(BASE, chunk_size=3)
KEYS = ("blocks.0.attn.proj.weight", "blocks.1.scale_shift_table", "final_layer.linear.bias")


def _base(folder: Path, dtype: torch.dtype) -> SanaWMTransformer:
    """A random base transformer saved as ``folder/transformer.safetensors`` in ``dtype``."""
    torch.manual_seed(0)
    model = SanaWMTransformer(BASE).to(dtype)
    folder.mkdir(parents=True, exist_ok=True)
    save_transformer(model, folder / "transformer.safetensors")
    return model


def _fine_tuned(base: SanaWMTransformer) -> SanaWMTransformer:
    """The chunk-causal model with the base's weights (in fp32) and ``KEYS`` changed."""
    model = SanaWMTransformer(CAUSAL)
    model.load_state_dict({k: v.float() for k, v in base.state_dict().items()})
    params = dict(model.named_parameters())
    with torch.no_grad():
        for key in KEYS:
            params[key].add_(torch.randn_like(params[key]) * 0.1 + 0.01)
    return model


def test_round_trip_gives_the_trained_model(tmp_path: Path) -> None:
    base = _base(tmp_path, torch.float32)
    trained = _fine_tuned(base)
    patch = write_patch(tmp_path / "transformer.safetensors", trained, KEYS, tmp_path / PATCH_FILE)
    assert sorted(patch.tensors) == sorted(KEYS)
    assert patch.num_params == sum(trained.state_dict()[k].numel() for k in KEYS)
    with safe_open(str(tmp_path / PATCH_FILE), framework="pt") as handle:
        metadata = handle.metadata()
        assert sorted(handle.keys()) == sorted(KEYS)
    assert metadata["format"] == PATCH_FORMAT and metadata["base_file"] == "transformer.safetensors"
    assert metadata["base_sha256"] == file_sha256(tmp_path / "transformer.safetensors")
    assert SanaWMConfig.from_dict(json.loads(metadata["sana_wm_config"])) == CAUSAL
    assert chunk_causal_demo_available(tmp_path)

    loaded = load_chunk_causal_demo_transformer(tmp_path, "cpu", torch.float32)
    assert loaded.config == CAUSAL and loaded.config.chunk_causal
    want = trained.state_dict()
    got = loaded.state_dict()
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert torch.equal(got[key], value), key


def test_fp16_base_stores_fp16_tensors_and_merges_them(tmp_path: Path) -> None:
    base = _base(tmp_path, torch.float16)
    trained = _fine_tuned(base)  # fp32 training copy of the fp16 base
    write_patch(
        tmp_path / "transformer.safetensors",
        trained.state_dict(),
        KEYS,
        tmp_path / "p.safetensors",
        config=CAUSAL,
    )
    assert {t.dtype for t in load_file(str(tmp_path / "p.safetensors")).values()} == {torch.float16}
    config, state = merged_state(tmp_path, patch_path=tmp_path / "p.safetensors")
    assert config == CAUSAL
    for key, value in trained.state_dict().items():
        assert torch.equal(state[key], value.half()), key
    loaded = load_chunk_causal_demo_transformer(tmp_path, dtype=None, patch_path=tmp_path / "p.safetensors")
    assert loaded.final_layer.linear.bias.dtype == torch.float16


def test_a_changed_base_is_refused(tmp_path: Path) -> None:
    base = _base(tmp_path, torch.float32)
    write_patch(tmp_path / "transformer.safetensors", _fine_tuned(base), KEYS, tmp_path / PATCH_FILE)
    with torch.no_grad():
        base.blocks[0].mlp.t_conv.weight.mul_(1.5)  # a retrained bidirectional model
    save_transformer(base, tmp_path / "transformer.safetensors")
    with pytest.raises(InputError, match="made for another transformer.safetensors"):
        load_chunk_causal_demo_transformer(tmp_path)


def test_keys_the_base_lacks_are_refused(tmp_path: Path) -> None:
    base = _base(tmp_path, torch.float32)
    trained = _fine_tuned(base)
    with pytest.raises(InputError, match="blocks.7.attn.proj.weight is not a tensor of the base"):
        write_patch(
            tmp_path / "transformer.safetensors",
            trained,
            [*KEYS, "blocks.7.attn.proj.weight"],
            tmp_path / PATCH_FILE,
        )
    with pytest.raises(InputError, match="no tensors"):
        write_patch(tmp_path / "transformer.safetensors", trained, [], tmp_path / PATCH_FILE)
    # A patch file edited by hand: an extra tensor, then a wrongly shaped one.
    write_patch(tmp_path / "transformer.safetensors", trained, KEYS, tmp_path / PATCH_FILE)
    with safe_open(str(tmp_path / PATCH_FILE), framework="pt") as handle:
        metadata = handle.metadata()
    tensors = load_file(str(tmp_path / PATCH_FILE))
    save_file({**tensors, "blocks.9.mlp.extra": torch.zeros(2)}, str(tmp_path / PATCH_FILE), metadata)
    with pytest.raises(InputError, match="tensors its base lacks: blocks.9.mlp.extra"):
        load_chunk_causal_demo_transformer(tmp_path)
    tensors["final_layer.linear.bias"] = torch.zeros(5)
    save_file(tensors, str(tmp_path / PATCH_FILE), metadata)
    with pytest.raises(InputError, match="shaped unlike"):
        load_chunk_causal_demo_transformer(tmp_path)


def test_a_model_changed_outside_the_patch_is_refused(tmp_path: Path) -> None:
    base = _base(tmp_path, torch.float32)
    trained = _fine_tuned(base)
    with torch.no_grad():
        trained.blocks[1].mlp.t_conv.weight.add_(1e-3)  # trained but not in the patch
    with pytest.raises(
        InputError, match=r"differs from the base outside the patch in 1 tensor\(s\) \(blocks.1"
    ):
        write_patch(tmp_path / "transformer.safetensors", trained, KEYS, tmp_path / PATCH_FILE)
    assert not (tmp_path / PATCH_FILE).exists()


def test_a_file_that_is_not_a_patch_is_refused(tmp_path: Path) -> None:
    _base(tmp_path, torch.float32)
    with pytest.raises(InputError, match="is not a sana-wm-demo-patch/1 file"):
        read_patch(tmp_path / "transformer.safetensors")
    with pytest.raises(InputError, match="does not exist"):
        load_chunk_causal_demo_transformer(tmp_path)
