"""Tiny stage-1 checkpoints in the official layouts: single files, training checkpoints, Hugging Face folders.

The tiny model (:func:`sana_wm.models.tiny`, chunk_size 3 where asked) stands in for the release; official
registry names map to the release's sizes, so tests that read an official ``config.yaml`` point the name at
the tiny sizes with :func:`tiny_registry`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from sana_wm.models import SanaWMConfig, SanaWMTransformer, tiny
from sana_wm.tiny import perturb_dit_parameters

TINY_STREAMING = dataclasses.replace(tiny(), chunk_size=3)

# An official chunk-causal config.yaml (the teacher's model section) for the tiny sizes, once the registry
# name points at them (:func:`tiny_registry`).
TINY_CHUNK_CAUSAL_YAML = """
model:
  model: SanaMSVideoCamCtrl_1600M_P1_D20
  camctrl_type: ChunkCausalGDNUCPESinglePathLiteLABothTriton
  attn_type: ChunkCausalGDNTriton
  ffn_type: ChunkGLUMBConvTemp
  pos_embed_type: wan_rope
  chunk_size: 3
  chunk_split_strategy: first_chunk_plus_one
  softmax_every_n: 4
  linear_head_dim: 112
  chunk_plucker_post_attn_blocks: 4
vae:
  vae_latent_dim: 16
text_encoder:
  caption_channels: 64
scheduler:
  vis_sampler: chunk_flow_euler
"""


def tiny_model(seed: int, config: SanaWMConfig | None = None, dtype: torch.dtype = torch.float32):
    """The tiny transformer with every parameter perturbed (no silent zeros), in ``dtype``."""
    torch.manual_seed(seed)
    model = SanaWMTransformer(config or tiny())
    perturb_dit_parameters(model, seed)
    return model.to(dtype)


def official_layout(model: SanaWMTransformer, prefix: str = "model.") -> dict[str, torch.Tensor]:
    """``model``'s weights under official key names (``t_embedder.mlp.0``, ...), each behind ``prefix``, with
    the extra tensors an official file carries (``pos_embed``, the learned null caption)."""
    renames = {"t_embedder.linear_1.": "t_embedder.mlp.0.", "t_embedder.linear_2.": "t_embedder.mlp.2."}
    state = {}
    for key, value in model.state_dict().items():
        for ours, official in renames.items():
            key = key.replace(ours, official)
        state[prefix + key] = value.clone()
    width = model.config.hidden_size
    state[prefix + "pos_embed"] = torch.zeros(1, 24, width, dtype=torch.bfloat16)
    state[prefix + "y_embedder.y_embedding"] = torch.randn(300, model.config.caption_channels)
    return state


def adam_state(model: SanaWMTransformer, count: int = 8) -> dict:
    """A real optimiser state dict (one AdamW step over copies of ``model``'s first ``count`` parameters):
    integer-keyed tensors and plain values, as in a training checkpoint."""
    params = [p.detach().float().clone().requires_grad_() for p in list(model.parameters())[:count]]
    optimizer = torch.optim.AdamW(params, lr=1e-5, betas=(0.0, 0.999))
    for p in params:
        p.grad = torch.ones_like(p)
    optimizer.step()
    return optimizer.state_dict()


def training_checkpoint(generator: SanaWMTransformer, critic: SanaWMTransformer) -> dict:
    """The distillation checkpoint's shape: generator and critic (``model.`` prefixed, official keys), both
    optimisers' states and some plain values."""
    return {
        "generator": official_layout(generator),
        "critic": official_layout(critic),
        "generator_optimizer": adam_state(generator),
        "critic_optimizer": adam_state(critic),
        "step": 700,
        "config": {"denoising_step_list": [1000, 967, 908, 764, 0], "sink_token": False},
    }


def save_training_checkpoint(path: Path, checkpoint: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, path)
    return path


@pytest.fixture
def tiny_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """The official registry names of the 1.6B model (bidirectional and streaming) at the tiny sizes."""
    from sana_wm.models import config

    for name in ("SanaMSVideoCamCtrl_1600M_P1_D20", "SanaMSVideoCamCtrlStreaming_1600M_P1_D20"):
        monkeypatch.setitem(config.OFFICIAL_MODELS, name, (4, 224, 2))


def same_state(model: torch.nn.Module, other: torch.nn.Module) -> bool:
    """Bit-for-bit equality of two models' state dicts (keys, dtypes, values)."""
    a, b = model.state_dict(), other.state_dict()
    return a.keys() == b.keys() and all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)
