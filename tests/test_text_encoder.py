import pytest
import torch
from diffusers import SanaWMPipeline
from diffusers.pipelines.sana_wm.pipeline_sana_wm import DEFAULT_CHI_PROMPT
from transformers import Gemma2Config, Gemma2ForCausalLM, GemmaTokenizer

from sana_wm.errors import InputError
from sana_wm.text_encoder import CHI_PROMPT, TextEncoder

LONG = "x marks " + " ".join(f"word{i} is here" for i in range(40))  # ~560 characters: truncated
NEGATIVE_LONG = "blurry, low quality, " * 20  # 420 characters: truncated at 300 tokens
PROMPTS = ["", "xylophone on a road", "A car driving across a vast desert plain at golden hour.", LONG]


def _tokenizer() -> GemmaTokenizer:
    """A small BPE over characters plus a few merges; adds BOS like Gemma's tokenizer."""
    text = "\n".join(CHI_PROMPT) + "".join(PROMPTS) + NEGATIVE_LONG + "0123456789"
    chars = sorted(set(text.replace(" ", "▁")))
    vocab = {t: i for i, t in enumerate(["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", *chars])}
    merges = [("▁", "t"), ("h", "e"), ("▁t", "he"), ("i", "n"), ("e", "r"), ("▁", "a"), ("o", "r")]
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    assert len(vocab) <= 300
    return GemmaTokenizer(vocab=vocab, merges=merges, add_bos_token=True)


@pytest.fixture(scope="module")
def parts() -> tuple[Gemma2ForCausalLM, GemmaTokenizer]:
    torch.manual_seed(0)
    cfg = Gemma2Config(
        vocab_size=300,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=8,
    )
    return Gemma2ForCausalLM(cfg).eval(), _tokenizer()


def test_chi_prompt_is_the_trained_instruction_block() -> None:
    assert list(CHI_PROMPT) == DEFAULT_CHI_PROMPT


@pytest.mark.parametrize("prompt", PROMPTS, ids=["empty", "short", "sentence", "long"])
@pytest.mark.parametrize("negative", ["", NEGATIVE_LONG], ids=["neg_empty", "neg_long"])
def test_matches_diffusers_encode_prompt(parts, prompt: str, negative: str) -> None:
    model, tok = parts
    pipe = SanaWMPipeline(tokenizer=tok, text_encoder=model, vae=None, transformer=None, scheduler=None)
    with torch.no_grad():
        ref_pos, ref_pos_mask, ref_neg, ref_neg_mask = pipe.encode_prompt(
            prompt, negative, device=torch.device("cpu"), chi_prompt=DEFAULT_CHI_PROMPT
        )
    enc = TextEncoder(model, tok)
    pos, pos_mask = enc.encode([prompt], use_chi_prompt=True)
    neg, neg_mask = enc.encode([negative], use_chi_prompt=False)
    assert pos.shape == (1, 300, 16) and neg.shape == (1, 300, 16)
    assert (pos - ref_pos[:, 0]).abs().max().item() <= 1e-6
    assert (neg - ref_neg[:, 0]).abs().max().item() <= 1e-6
    assert torch.equal(pos_mask, ref_pos_mask) and torch.equal(neg_mask, ref_neg_mask)


def test_kept_tokens_are_bos_plus_the_user_prompt(parts) -> None:
    model, tok = parts
    enc = TextEncoder(model, tok)
    # Kept: BOS, then everything from the chi block's trailing space on. Like Gemma's tokenizer, ours merges
    # that space into a following "a" ("▁a"), so only BOS + the prompt's own tokens remain...
    _, mask = enc.encode(["a road"], use_chi_prompt=True)
    n_prompt = len(tok.encode(" a road", add_special_tokens=False))
    assert n_prompt == 6  # ▁a ▁ r o a d
    assert mask[0].tolist() == [1] * (1 + n_prompt) + [0] * (300 - 1 - n_prompt)
    # ...while before an unmerged character the space stays a token of its own and is kept as well.
    _, mask = enc.encode(["xylophone"], use_chi_prompt=True)
    assert mask[0].tolist() == [1] * (2 + 9) + [0] * (300 - 2 - 9)
    _, mask_long = enc.encode([LONG], use_chi_prompt=True)
    assert int(mask_long.sum()) == 300  # truncated: the prompt fills all 299 positions after BOS
    _, mask_neg = enc.encode([""], use_chi_prompt=False)
    assert mask_neg[0].tolist() == [1] + [0] * 299  # BOS only


def test_batch_equals_one_by_one_and_cfg_order(parts) -> None:
    model, tok = parts
    enc = TextEncoder(model, tok)
    batch, batch_mask = enc.encode(PROMPTS, use_chi_prompt=True, max_length=40)
    for i, p in enumerate(PROMPTS):
        one, one_mask = enc.encode([p], use_chi_prompt=True, max_length=40)
        assert (batch[i] - one[0]).abs().max().item() <= 1e-6 and torch.equal(batch_mask[i], one_mask[0])
    y, y_mask = enc.encode_for_cfg("xylophone on a road", "blurry", max_length=40)
    neg, _ = enc.encode(["blurry"], use_chi_prompt=False, max_length=40)
    pos, _ = enc.encode(["xylophone on a road"], use_chi_prompt=True, max_length=40)
    assert torch.equal(y, torch.cat([neg, pos])) and y_mask.shape == (2, 40)


def test_from_pretrained_round_trip(parts, tmp_path) -> None:
    model, tok = parts
    model.save_pretrained(tmp_path / "text_encoder")
    tok.save_pretrained(tmp_path / "tokenizer")
    loaded = TextEncoder.from_pretrained(
        tmp_path,
        dtype=torch.float32,
        local_files_only=True,
        model_subfolder="text_encoder",
        tokenizer_subfolder="tokenizer",
    )
    ref, ref_mask = TextEncoder(model, tok).encode(["A car driving."], use_chi_prompt=True, max_length=32)
    got, got_mask = loaded.encode(["A car driving."], use_chi_prompt=True, max_length=32)
    assert torch.equal(got_mask, ref_mask)
    assert (got - ref).abs().max().item() <= 1e-6


def test_bad_inputs_raise_input_error(parts, tmp_path) -> None:
    enc = TextEncoder(*parts)
    with pytest.raises(InputError, match="^prompt:"):
        enc.encode("a string, not a list", use_chi_prompt=True)
    with pytest.raises(InputError, match="^prompt:"):
        enc.encode([], use_chi_prompt=False)
    with pytest.raises(InputError, match="^text encoder"):
        TextEncoder.from_pretrained(tmp_path / "missing", local_files_only=True)


def test_a_folder_with_pickled_weights_only_is_refused(tmp_path, parts) -> None:
    """transformers would fall back to unpickling ``pytorch_model.bin``: we never do."""
    model, tokenizer = parts
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    with pytest.raises(InputError, match="text encoder .*safetensors"):
        TextEncoder.from_pretrained(tmp_path, local_files_only=True)
