"""The refiner's text path: Gemma-3 hidden states of the bare prompt, left padded, through the connectors."""

from __future__ import annotations

import copy

import pytest
import torch
from diffusers.pipelines.sana_wm.refiner import _pack_text_embeds
from helpers import tiny_refiner

from sana_wm.errors import InputError
from sana_wm.inference.refiner import Refiner, RefinerPrompt
from sana_wm.text_encoder import RefinerTextEncoder

LONG = " ".join(f"word{i}" for i in range(30))  # ~200 characters: truncated at 64 tokens


@pytest.mark.parametrize(
    "text", ["", tiny_refiner.PROMPT, "  padded prompt \n", LONG], ids=["empty", "short", "strip", "long"]
)
def test_prompt_embeddings_match_diffusers(parts, refiner, text) -> None:
    """diffusers normalises the stacked states before the connectors and they normalise again; we do it once.

    The second normalisation sees an input with masked mean 0 and range 8, so it changes values by ~1e-7
    (float32; in bfloat16 by up to one rounding step, see the official test below).
    """
    oracle = tiny_refiner.oracle(parts, max_length=tiny_refiner.TEXT_LENGTH)
    with torch.no_grad():
        want, want_mask = oracle._encode_prompt(text, device=torch.device("cpu"), dtype=torch.float32)
    got = refiner.encode_prompt(text)
    assert got.embeds_1LD.shape == (1, tiny_refiner.TEXT_LENGTH, 16)
    assert (got.embeds_1LD - want).abs().max().item() <= 1e-5
    assert torch.equal(got.mask_1L, want_mask)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_prompt_embeddings_equal_the_official_single_normalisation(parts, dtype) -> None:
    """Official: normalise the stacked states once, then project and run the video connector (the connectors
    of its diffusers version did not normalise). Bit-identical to ours, also in bfloat16."""
    connectors = copy.deepcopy(parts.connectors).to(dtype)
    encoder = RefinerTextEncoder(copy.deepcopy(parts.gemma).to(dtype), parts.tokenizer)
    ours = Refiner(tiny_refiner.transformer().to(dtype), connectors, encoder, text_max_length=32)
    got = ours.encode_prompt(tiny_refiner.PROMPT)
    hidden, mask = encoder.all_hidden_states(tiny_refiner.PROMPT, max_length=32)
    with torch.no_grad():
        packed = _pack_text_embeds(hidden, mask.sum(-1), device="cpu", padding_side="left")
        additive = (mask - 1).to(dtype).reshape(1, 1, 1, -1) * torch.finfo(dtype).max
        embeds, new_mask = connectors.video_connector(connectors.text_proj_in(packed), additive)
        keep = (new_mask < 1e-6).to(torch.int64).reshape(1, -1)
    assert torch.equal(got.embeds_1LD, embeds * keep[..., None]) and torch.equal(got.mask_1L, keep)


def test_all_hidden_states_are_left_padded_and_stacked(parts) -> None:
    encoder = RefinerTextEncoder(parts.gemma, parts.tokenizer)
    hidden, mask = encoder.all_hidden_states("  a road ", max_length=12)
    ids = parts.tokenizer("a road").input_ids
    assert ids[0] == parts.tokenizer.bos_token_id and len(ids) == 7  # BOS + 6 characters
    assert mask.tolist() == [[0] * 5 + [1] * 7]
    assert hidden.shape == (1, 12, 16, 3)  # 2 layers + the embedding output
    tokens = parts.tokenizer(
        ["a road"], max_length=12, padding="max_length", padding_side="left", return_tensors="pt"
    )
    with torch.no_grad():
        full = parts.gemma(**tokens, output_hidden_states=True)  # the causal LM, as diffusers calls it
    assert torch.equal(hidden, torch.stack(full.hidden_states, dim=-1))


def test_a_precomputed_prompt_and_a_released_encoder(parts, refiner, prompt) -> None:
    z = tiny_refiner.latents(5, seed=13)
    assert torch.equal(refiner(z, tiny_refiner.PROMPT, progress=False), refiner(z, prompt, progress=False))
    other = Refiner(parts.transformer, parts.connectors, RefinerTextEncoder(parts.gemma, parts.tokenizer))
    other.release_text_encoder()
    assert other.text_encoder is None
    assert torch.equal(other(z, prompt, progress=False), refiner(z, prompt, progress=False))
    with pytest.raises(InputError, match="--refiner_gemma_root: the refiner has no text encoder"):
        other(z, "a prompt", progress=False)
    # The text matters (cross-attention is order-free, so change the values, not their order).
    changed = RefinerPrompt(prompt.embeds_1LD * 2.0, prompt.mask_1L)
    assert (other(z, changed, progress=False) - refiner(z, prompt, progress=False)).abs().max() > 1e-2
