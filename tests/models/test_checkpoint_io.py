"""Loading the three safetensors formats (official file, diffusers folder, ours); strictness, its report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers.parity import TINY_DIFFUSERS_CONFIG, perturb_all_parameters
from safetensors.torch import save_file

from sana_wm.errors import InputError
from sana_wm.models import SanaWMTransformer, tiny
from sana_wm.models.checkpoint_io import load_transformer, official_to_state_dict, save_transformer


def _model(seed: int = 0) -> SanaWMTransformer:
    torch.manual_seed(seed)
    model = SanaWMTransformer(tiny())
    perturb_all_parameters(model, seed)
    return model


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _official_layout(model: SanaWMTransformer, prefix: str) -> dict[str, torch.Tensor]:
    """The model's weights under official key names, with the extra tensors an official file carries."""
    renames = {"t_embedder.linear_1.": "t_embedder.mlp.0.", "t_embedder.linear_2.": "t_embedder.mlp.2."}
    state = {}
    for key, value in model.state_dict().items():
        for ours, official in renames.items():
            key = key.replace(ours, official)
        state[prefix + key] = value.clone()
    state[prefix + "pos_embed"] = torch.zeros(1, 24, 224)
    state[prefix + "y_embedder.y_embedding"] = torch.randn(300, 64)
    state[prefix + "blocks.0.attn.conv_k.bias"] = torch.zeros(224)
    return state


def test_own_format_round_trip(tmp_path: Path) -> None:
    model = _model()
    save_transformer(model, tmp_path / "m.safetensors")
    loaded = load_transformer(tmp_path / "m.safetensors")
    assert loaded.config == model.config and _same_weights(loaded, model)
    half = load_transformer(tmp_path / "m.safetensors", dtype=torch.bfloat16)
    assert all(p.dtype == torch.bfloat16 for p in half.parameters())


@pytest.mark.parametrize("prefix", ["", "model.", "generator.model."])
def test_official_single_file(tmp_path: Path, prefix: str) -> None:
    model = _model(1)
    save_file(_official_layout(model, prefix), str(tmp_path / "dit.safetensors"))
    loaded = load_transformer(tmp_path / "dit.safetensors", config=tiny())
    assert _same_weights(loaded, model)


def test_official_file_reads_the_sibling_config_yaml(tmp_path: Path) -> None:
    """HF layout: config.yaml at the root, weights under dit/; here a release yaml meets tiny weights."""
    (tmp_path / "dit").mkdir()
    save_file(_official_layout(_model(), ""), str(tmp_path / "dit" / "w.safetensors"))
    (tmp_path / "config.yaml").write_text(
        "model:\n  model: SanaMSVideoCamCtrl_1600M_P1_D20\n"
        "  camctrl_type: BidirectionalGDNUCPESinglePathLiteLABothTriton\n"
    )
    with pytest.raises(InputError) as err:
        load_transformer(tmp_path / "dit" / "w.safetensors")
    message = str(err.value)
    assert "\n" not in message
    # Blocks 4-19 are absent from the tiny file: 12 GDN blocks of 42 keys and 4 softmax blocks of 40 (their
    # recall_gate buffers are zero-filled, not reported).
    assert "664 missing (blocks.4." in message
    assert "shape-mismatched (t_embedder.linear_1.weight (224, 256) vs model (2240, 256)" in message


@pytest.mark.parametrize("max_shard_size", [None, "1MB"])
def test_diffusers_folder(tmp_path: Path, max_shard_size: str | None) -> None:
    from diffusers import SanaWMTransformer3DModel

    torch.manual_seed(0)
    oracle = SanaWMTransformer3DModel(**TINY_DIFFUSERS_CONFIG)
    perturb_all_parameters(oracle, 5)
    kwargs = {"max_shard_size": max_shard_size} if max_shard_size else {}
    oracle.save_pretrained(tmp_path / "transformer", **kwargs)
    sharded = list((tmp_path / "transformer").glob("*.index.json"))
    assert bool(sharded) == (max_shard_size is not None)
    loaded = load_transformer(tmp_path)  # a pipeline root with transformer/ also works
    assert loaded.config == tiny()
    assert all(torch.equal(v, oracle.state_dict()[k]) for k, v in loaded.state_dict().items())


def test_strict_report_lists_missing_unexpected_and_shapes(tmp_path: Path) -> None:
    model = _model()
    state = dict(model.state_dict())
    del state["final_layer.linear.bias"]
    state["blocks.0.attn.extra"] = torch.zeros(3)
    state["blocks.1.scale_shift_table"] = torch.zeros(5, 224)
    save_file(
        state,
        str(tmp_path / "broken.safetensors"),
        metadata={"format": "sana_wm", "sana_wm_config": json.dumps(tiny().to_dict())},
    )
    with pytest.raises(InputError) as err:
        load_transformer(tmp_path / "broken.safetensors")
    assert str(err.value) == (
        f"checkpoint {tmp_path / 'broken.safetensors'}: 1 missing (final_layer.linear.bias); "
        "1 unexpected (blocks.0.attn.extra); 1 shape-mismatched (blocks.1.scale_shift_table (5, 224) vs "
        "model (6, 224)) (pass strict=False to load only the matching keys)"
    )
    loose = load_transformer(tmp_path / "broken.safetensors", strict=False)
    assert torch.equal(loose.blocks[2].scale_shift_table, model.blocks[2].scale_shift_table)


def test_pickle_and_missing_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "w.pt").write_bytes(b"not read")
    with pytest.raises(InputError, match="is a pickle file; sana-wm reads safetensors only"):
        load_transformer(tmp_path / "w.pt")
    with pytest.raises(InputError, match="does not exist"):
        load_transformer(tmp_path / "nope.safetensors")
    save_file({"x": torch.zeros(1)}, str(tmp_path / "lonely.safetensors"))
    with pytest.raises(InputError, match="without a config.yaml"):
        load_transformer(tmp_path / "lonely.safetensors")


def test_official_key_mapping_keeps_a_nonzero_conv_bias() -> None:
    """A non-zero ``conv_k.bias`` would change the model, so it stays and strict loading reports it."""
    mapped = official_to_state_dict({"blocks.0.attn.conv_k.bias": torch.ones(2), "pos_embed": torch.ones(1)})
    assert list(mapped) == ["blocks.0.attn.conv_k.bias"]


def _rewrite(path: Path, change) -> None:
    """Re-save our checkpoint at ``path`` with ``change(state)`` applied, keeping its metadata (config)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    state = load_file(str(path))
    change(state)
    save_file(state, str(path), metadata=metadata)


def test_non_finite_wrong_kind_and_torn_files_are_one_line_each(tmp_path) -> None:
    path = tmp_path / "m.safetensors"
    save_transformer(_model(), path)
    key = next(k for k in _model().state_dict() if k.endswith("weight"))
    _rewrite(path, lambda s: s[key].fill_(float("nan")))
    with pytest.raises(InputError, match=rf"1 holding NaN or infinity \({key}\)"):
        load_transformer(path)

    save_transformer(_model(), path)
    _rewrite(path, lambda s: s.__setitem__(key, s[key].to(torch.int32)))
    with pytest.raises(InputError, match=rf"1 of the wrong dtype \({key} int32 vs model float32\)"):
        load_transformer(path)

    save_transformer(_model(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"cannot read .* as safetensors"):
        load_transformer(path)
