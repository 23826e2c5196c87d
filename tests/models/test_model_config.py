"""Config dataclass, presets, and the diffusers / official config readers."""

from __future__ import annotations

import pytest
import torch
import yaml

from sana_wm.errors import InputError
from sana_wm.models import SanaWMConfig, config_from_diffusers, config_from_official_yaml, preset, tiny

# The transformer-relevant part of the official configs/sana_wm/sana_wm_1600m_720p.yaml, field by field.
OFFICIAL_YAML = """
model:
  model: SanaMSVideoCamCtrl_1600M_P1_D20
  image_size: 720
  aspect_ratio_type: ASPECT_RATIO_VIDEO_720_MS_DIV32
  mixed_precision: bf16
  fp32_attention: true
  multi_scale: true
  camctrl_type: BidirectionalGDNUCPESinglePathLiteLABothTriton
  attn_type: BidirectionalGDNTriton
  softmax_every_n: 4
  linear_head_dim: 112
  conv_kernel_size: 4
  k_conv_only: true
  ffn_type: GLUMBConvTemp
  t_kernel_size: 3
  mlp_acts: [silu, silu, null]
  mlp_ratio: 3
  use_pe: true
  pos_embed_type: wan_rope
  qk_norm: true
  cross_norm: true
  class_dropout_prob: 0.0
  chunk_split_strategy: first_chunk_plus_one
  cam_attn_compress: 1
  init_cam_from_base: true
  use_chunk_plucker_post_attn: true
  chunk_plucker_channels: 48
  chunk_plucker_post_attn_blocks: 20
vae:
  vae_type: LTX2VAE_diffusers
  vae_latent_dim: 128
  vae_stride: [8, 32, 32]
text_encoder:
  text_encoder_name: gemma-2-2b-it
  y_norm: true
  y_norm_scale_factor: 0.01
  model_max_length: 300
scheduler:
  predict_flow_v: true
  pred_sigma: false
  flow_shift: 9.95
"""


def test_dict_round_trip_and_unknown_keys() -> None:
    cfg = tiny()
    assert SanaWMConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(InputError, match="config: unknown key.s. depht"):
        SanaWMConfig.from_dict({**cfg.to_dict(), "depht": 3})


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("depth", 2.5, "config.depth: expected an integer"),
        ("head_dim", 100, "config.head_dim: 100 does not divide"),
        ("temporal_kernel", 4, "config.temporal_kernel: must be odd"),
        ("plucker_blocks", 30, "config.plucker_blocks"),
    ],
)
def test_invalid_values_are_input_errors(field: str, value: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        SanaWMConfig.from_dict({**tiny().to_dict(), field: value})


def test_presets() -> None:
    release = preset("sana_wm_1600m_720p")
    assert (release.depth, release.hidden_size, release.num_heads, release.ffn_hidden) == (20, 2240, 20, 6720)
    assert [i for i in range(20) if release.is_softmax_block(i)] == [3, 7, 11, 15, 19]
    assert [i for i in range(4) if tiny().is_softmax_block(i)] == [3]
    with pytest.raises(InputError, match="preset: 'huge'"):
        preset("huge")


def test_diffusers_config_mapping() -> None:
    from diffusers import SanaWMTransformer3DModel

    with torch.device("meta"):
        defaults = dict(SanaWMTransformer3DModel().config)
    release_json = {"_class_name": "SanaWMTransformer3DModel", "_diffusers_version": "0.42.1", **defaults}
    assert config_from_diffusers(release_json) == preset("sana_wm_1600m_720p")
    small = config_from_diffusers({**defaults, "num_layers": 6, "chunk_plucker_post_attn_blocks": -1})
    assert (small.depth, small.plucker_blocks) == (6, 6)
    with pytest.raises(InputError, match=r"diffusers config.patch_size: \(1, 2, 2\) is not supported"):
        config_from_diffusers({**defaults, "patch_size": (1, 2, 2)})
    with pytest.raises(InputError, match="diffusers config: unknown key.s. frame_causal"):
        config_from_diffusers({**defaults, "frame_causal": True})


def test_official_yaml_mapping() -> None:
    official = yaml.safe_load(OFFICIAL_YAML)
    assert config_from_official_yaml(official) == preset("sana_wm_1600m_720p")
    official["model"]["camctrl_type"] = "ChunkCausalGDNUCPESinglePathLiteLA"
    with pytest.raises(InputError, match="config.yaml model.camctrl_type: 'ChunkCausal"):
        config_from_official_yaml(official)
    official = yaml.safe_load(OFFICIAL_YAML)
    official["model"]["use_delta_actions"] = True
    with pytest.raises(InputError, match="config.yaml model: unknown key.s. use_delta_actions"):
        config_from_official_yaml(official)
    official = yaml.safe_load(OFFICIAL_YAML)
    official["model"]["chunk_size"] = 3
    with pytest.raises(InputError, match="model.chunk_size: 3 is not supported"):
        config_from_official_yaml(official)
