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
    official["model"]["camctrl_type"] = "BidirectionalSoftmaxUCPESinglePathLiteLA"
    with pytest.raises(InputError, match="config.yaml model.camctrl_type: 'BidirectionalSoftmax"):
        config_from_official_yaml(official)
    official = yaml.safe_load(OFFICIAL_YAML)
    official["model"]["frame_causal"] = True
    with pytest.raises(InputError, match="config.yaml model: unknown key.s. frame_causal"):
        config_from_official_yaml(official)
    official = yaml.safe_load(OFFICIAL_YAML)
    official["model"]["use_delta_actions"] = True
    with pytest.raises(InputError, match="config.yaml model.use_delta_actions: True is not supported"):
        config_from_official_yaml(official)
    official = yaml.safe_load(OFFICIAL_YAML)
    official["model"]["chunk_size"] = 3
    with pytest.raises(InputError, match="model.chunk_size: 3 is not supported"):
        config_from_official_yaml(official)


# The model section of the official chunk-causal teacher's config (configs/sana_wm/stage1/
# sana_wm_stage1_sekai_chunk_causal_cp2_fsdp2.yaml, whose load_from is SANA-WM_chunk_causal), field by field.
CHUNK_CAUSAL_MODEL = """
model: SanaMSVideoCamCtrl_1600M_P1_D20
image_size: 720
mixed_precision: bf16
fp32_attention: true
load_from: hf://Efficient-Large-Model/SANA-WM_chunk_causal/dit/sana_wm_chunk_causal_1600m_720p.safetensors
aspect_ratio_type: ASPECT_RATIO_VIDEO_720_MS_DIV32
multi_scale: true
camctrl_type: ChunkCausalGDNUCPESinglePathLiteLABothTriton
attn_type: ChunkCausalGDNTriton
softmax_every_n: 4
linear_head_dim: 112
conv_kernel_size: 4
k_conv_only: true
ffn_type: ChunkGLUMBConvTemp
t_kernel_size: 3
mlp_acts: [silu, silu, null]
mlp_ratio: 3.0
use_pe: true
pos_embed_type: wan_rope
qk_norm: true
cross_norm: true
cross_attn_type: flash
class_dropout_prob: 0.1
chunk_size: 3
chunk_split_strategy: first_chunk_plus_one
cam_attn_compress: 1
init_cam_from_base: true
use_delta_actions: false
use_delta_pose_additive: false
use_chunk_plucker_post_attn: true
chunk_plucker_channels: 48
chunk_plucker_post_attn_blocks: 20
use_autograd_kernel: true
"""

# The model section of the official streaming config (configs/sana_wm/sana_wm_streaming_1600m_720p.yaml): no
# camctrl_type (the streaming class builds the cached attention), the cached FFN, the causal-Wan RoPE.
STREAMING_MODEL = """
model: SanaMSVideoCamCtrlStreaming_1600M_P1_D20
image_size: 720
aspect_ratio_type: ASPECT_RATIO_VIDEO_720_MS_DIV32
mixed_precision: bf16
fp32_attention: true
multi_scale: true
attn_type: BidirectionalGDNTriton
softmax_every_n: 4
linear_head_dim: 112
conv_kernel_size: 4
k_conv_only: true
ffn_type: CachedGLUMBConvTemp
t_kernel_size: 3
mlp_acts: [silu, silu, null]
mlp_ratio: 3
use_pe: true
pos_embed_type: casual_wan_rope
qk_norm: true
cross_norm: true
class_dropout_prob: 0.0
chunk_size: 3
chunk_split_strategy: first_chunk_plus_one
cam_attn_compress: 1
init_cam_from_base: true
use_chunk_plucker_post_attn: true
chunk_plucker_channels: 48
chunk_plucker_post_attn_blocks: 20
"""


def _official(model_section: str) -> dict:
    """A whole official config around ``model_section`` (the other sections as in the release yaml)."""
    official = yaml.safe_load(OFFICIAL_YAML)
    official["model"] = yaml.safe_load(model_section)
    official["scheduler"]["vis_sampler"] = "chunk_flow_euler"
    return official


def test_official_chunk_causal_and_streaming_yaml() -> None:
    release = preset("sana_wm_1600m_720p")
    teacher = config_from_official_yaml(_official(CHUNK_CAUSAL_MODEL))
    assert teacher == SanaWMConfig(chunk_size=3, chunk_strategy="first_plus_one")
    assert teacher.chunk_causal and not release.chunk_causal
    # Only the chunking differs from the release: the network (and its keys) is the same.
    assert {k: v for k, v in teacher.to_dict().items() if v != release.to_dict()[k]} == {"chunk_size": 3}
    student = config_from_official_yaml(_official(STREAMING_MODEL))
    assert student == preset("sana_wm_streaming_1600m_720p") == teacher


@pytest.mark.parametrize(
    ("changes", "chunk_size", "strategy"),
    [
        ({"camctrl_type": "ChunkCausalGDNUCPESinglePathLiteLA"}, 3, "first_plus_one"),
        (
            {"camctrl_type": "CachedChunkCausalGDNUCPESinglePathLiteLA", "ffn_type": "CachedGLUMBConvTemp"},
            3,
            None,
        ),
        ({"chunk_split_strategy": "first_plus_one", "chunk_size": 5}, 5, "first_plus_one"),
        ({"chunk_split_strategy": "uniform", "chunk_size": 2}, 2, "uniform"),
        ({"chunk_split_strategy": "first_frame", "pos_embed_type": "causal_wan_rope"}, 3, "first_frame"),
    ],
)
def test_chunk_causal_variants(changes: dict, chunk_size: int, strategy: str | None) -> None:
    official = _official(CHUNK_CAUSAL_MODEL)
    official["model"].update(changes)
    cfg = config_from_official_yaml(official)
    assert (cfg.chunk_size, cfg.chunk_strategy) == (chunk_size, strategy or "first_plus_one")


@pytest.mark.parametrize(
    ("section", "changes", "message"),
    [
        (CHUNK_CAUSAL_MODEL, {"chunk_size": None}, r"model.chunk_size: required for a chunk-causal model"),
        (STREAMING_MODEL, {"chunk_size": None}, r"model.chunk_size: required for a chunk-causal model"),
        (CHUNK_CAUSAL_MODEL, {"chunk_size": 0}, r"model.chunk_size: expected a positive integer, got 0"),
        (
            CHUNK_CAUSAL_MODEL,
            {"chunk_size": True},
            r"model.chunk_size: expected a positive integer, got True",
        ),
        (CHUNK_CAUSAL_MODEL, {"chunk_split_strategy": None}, r"model.chunk_split_strategy: required with"),
        (
            CHUNK_CAUSAL_MODEL,
            {"chunk_split_strategy": "random"},
            r"chunk_split_strategy: 'random' is not supp",
        ),
        (CHUNK_CAUSAL_MODEL, {"chunk_index": [0, 4, 7]}, r"model.chunk_index: an explicit chunk list is not"),
        (STREAMING_MODEL, {"chunk_index": [0, 4]}, r"model.chunk_index: an explicit chunk list is not"),
        (CHUNK_CAUSAL_MODEL, {"ffn_type": "GLUMBConvTemp"}, r"model.ffn_type: 'GLUMBConvTemp' is not supp"),
        (CHUNK_CAUSAL_MODEL, {"ffn_type": None}, r"model.ffn_type: required with chunk_size"),
        (STREAMING_MODEL, {"ffn_type": "GLUMBConvTemp"}, r"model.ffn_type: 'GLUMBConvTemp' is not supp"),
        (
            STREAMING_MODEL,
            {"camctrl_type": "BidirectionalGDNUCPESinglePathLiteLABothTriton"},
            r"camctrl_type: 'BidirectionalGDNUCPESinglePathLiteLABothTriton' does not go with the chunk",
        ),
        (
            CHUNK_CAUSAL_MODEL,
            {"camctrl_type": "CachedSoftmaxAttn"},
            r"model.camctrl_type: 'CachedSoftmaxAttn'",
        ),
        (
            CHUNK_CAUSAL_MODEL,
            {"pos_embed_type": "rope_3d"},
            r"model.pos_embed_type: 'rope_3d' is not supported",
        ),
    ],
)
def test_chunk_causal_yaml_errors(section: str, changes: dict, message: str) -> None:
    official = _official(section)
    for key, value in changes.items():
        if value is None:
            official["model"].pop(key, None)
        else:
            official["model"][key] = value
    with pytest.raises(InputError, match=message):
        config_from_official_yaml(official)


def test_bidirectional_yaml_refuses_causal_settings() -> None:
    official = yaml.safe_load(OFFICIAL_YAML)
    official["model"]["pos_embed_type"] = "casual_wan_rope"
    with pytest.raises(InputError, match="model.pos_embed_type: 'casual_wan_rope' is not supported"):
        config_from_official_yaml(official)
    official = yaml.safe_load(OFFICIAL_YAML)
    official["model"]["ffn_type"] = "ChunkGLUMBConvTemp"
    with pytest.raises(InputError, match="model.ffn_type: 'ChunkGLUMBConvTemp' is not supported"):
        config_from_official_yaml(official)
    official = yaml.safe_load(OFFICIAL_YAML)
    official["model"]["chunk_index"] = [0, 4]
    with pytest.raises(InputError, match="model.chunk_index: an explicit chunk list is not supported"):
        config_from_official_yaml(official)
