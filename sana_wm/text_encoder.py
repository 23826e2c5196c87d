"""Gemma prompt encoders: the one place generation code uses ``transformers``.

SANA-WM conditions on the last hidden state (after Gemma's final norm) of ``gemma-2-2b-it``: 300 tokens of
2304 features per prompt, plus a 0/1 attention mask. Positive prompts are prefixed with the SANA
"Enhanced prompt" instruction block (:data:`CHI_PROMPT`); negative prompts are encoded bare.

The stage-2 refiner has its own Gemma-3 encoder (:class:`RefinerTextEncoder`): see ``inference.refiner``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from transformers import AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from sana_wm.errors import InputError

# The instruction block SANA models were trained with in front of every positive prompt ("chi prompt").
# It is model input, not documentation: it must match the official model's training prompt character for
# character (lines joined by "\n"; the last line ends with a space), or the embeddings change.
CHI_PROMPT: tuple[str, ...] = (
    'Given a user prompt, generate an "Enhanced prompt" that provides detailed visual descriptions suitable '
    "for image generation. Evaluate the level of detail in the user prompt:",
    "- If the prompt is simple, focus on adding specifics about colors, shapes, sizes, textures, and spatial "
    "relationships to create vivid and concrete scenes.",
    "- If the prompt is already detailed, refine and enhance the existing details slightly without "
    "overcomplicating.",
    "Here are examples of how to transform or refine prompts:",
    "- User Prompt: A cat sleeping -> Enhanced: A small, fluffy white cat curled up in a round shape, "
    "sleeping peacefully on a warm sunny windowsill, surrounded by pots of blooming red flowers.",
    "- User Prompt: A busy city street -> Enhanced: A bustling city street scene at dusk, featuring "
    "glowing street lamps, a diverse crowd of people in colorful clothing, and a double-decker bus passing "
    "by towering glass skyscrapers.",
    "Please generate only the enhanced description for the prompt below and avoid including any additional "
    "commentary or evaluations:",
    "User Prompt: ",
)

DEFAULT_MAX_LENGTH = 300


class _GemmaBackbone:
    """Placement of the wrapped ``self.model``: the device and dtype of its first parameter."""

    model: torch.nn.Module

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype


class TextEncoder(_GemmaBackbone):
    """Tokenizer + Gemma-2 decoder stack producing SANA-WM text conditioning.

    ``model`` may be a ``Gemma2Model`` or a ``Gemma2ForCausalLM``; for the latter only its decoder stack
    runs (its last hidden state equals the causal LM's ``hidden_states[-1]``), so no vocabulary logits are
    computed.
    """

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
        get_decoder = getattr(model, "get_decoder", None)
        self.model = get_decoder() if callable(get_decoder) else model
        self.tokenizer = tokenizer

    @classmethod
    def from_pretrained(
        cls,
        path_or_repo: str | os.PathLike[str],
        *,
        dtype: torch.dtype = torch.bfloat16,
        device: str | torch.device = "cpu",
        local_files_only: bool = False,
        model_subfolder: str = "",
        tokenizer_subfolder: str = "",
    ) -> TextEncoder:
        """Load tokenizer and Gemma-2 weights from a local folder or a Hub repo id.

        The official checkpoint ``Efficient-Large-Model/gemma-2-2b-it`` keeps both at the repo root; a
        diffusers-layout repo keeps them in ``text_encoder/`` and ``tokenizer/`` (pass the subfolders). A
        causal-LM checkpoint loads into the bare decoder (``AutoModel``), skipping the LM head.
        """
        source = str(path_or_repo)
        try:
            tokenizer = AutoTokenizer.from_pretrained(
                source, subfolder=tokenizer_subfolder, local_files_only=local_files_only
            )
            model = AutoModel.from_pretrained(
                source,
                subfolder=model_subfolder,
                dtype=dtype,
                local_files_only=local_files_only,
                use_safetensors=True,  # never a pickle .bin
            )
        except OSError as err:
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise InputError(f"text encoder {source!r}: {first_line}") from err
        return cls(model.to(device).eval(), tokenizer)

    @torch.no_grad()
    def _hidden_states(self, texts: list[str], length: int) -> tuple[torch.Tensor, torch.Tensor]:
        # SANA was trained with right padding; Gemma's tokenizer pads on the left by default.
        tokens = self.tokenizer(
            texts,
            max_length=length,
            padding="max_length",
            padding_side="right",
            truncation=True,
            return_tensors="pt",
        )
        input_ids = tokens["input_ids"].to(self.device)
        mask_BL = tokens["attention_mask"].to(self.device)
        hidden_BLD = self.model(input_ids=input_ids, attention_mask=mask_BL).last_hidden_state
        return hidden_BLD, mask_BL

    def encode(
        self, prompts: Sequence[str], *, use_chi_prompt: bool, max_length: int = DEFAULT_MAX_LENGTH
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode prompts to ``(embeds_BLD, mask_BL)`` with ``L = max_length``.

        With ``use_chi_prompt`` (positive prompts) each text is ``"\\n".join(CHI_PROMPT) + prompt``, tokenised
        right-padded/truncated to ``n_chi + max_length - 2`` tokens, where ``n_chi = len(tokens(chi))`` counts
        BOS and the chi block's trailing space. Kept are position 0 (BOS) and the last ``max_length - 1``
        positions, i.e. everything from position ``n_chi - 1`` on. With Gemma's tokenizer the trailing space
        of the chi block merges into the prompt's first token ("▁word"), so position ``n_chi - 1`` is where
        the user prompt starts: the result is BOS + up to ``max_length - 1`` prompt tokens + padding. Without
        ``use_chi_prompt`` (negative prompts) the bare text is tokenised to ``max_length`` directly.

        Returns:
            embeds_BLD: Gemma last hidden states in the model dtype, on the model device.
            mask_BL: int64 attention mask, 1 for real tokens (also selected the same way).
        """
        if isinstance(prompts, str) or len(prompts) == 0:
            raise InputError("prompt: expected a non-empty list of strings")
        if max_length < 2:
            raise InputError(f"max_length: must be at least 2, got {max_length}")
        if not use_chi_prompt:
            return self._hidden_states(list(prompts), max_length)
        chi = "\n".join(CHI_PROMPT)
        length = len(self.tokenizer.encode(chi)) + max_length - 2
        hidden_BLD, mask_BL = self._hidden_states([chi + p for p in prompts], length)
        keep = [0, *range(length - max_length + 1, length)]
        return hidden_BLD[:, keep], mask_BL[:, keep]

    def encode_for_cfg(
        self, prompt: str, negative_prompt: str = "", *, max_length: int = DEFAULT_MAX_LENGTH
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Text conditioning for guided sampling in batch order ``[negative, positive]``.

        Returns ``(embeds_2LD, mask_2L)``: the negative prompt bare, the positive one with the chi prompt.
        """
        pos_BLD, pos_mask_BL = self.encode([prompt], use_chi_prompt=True, max_length=max_length)
        neg_BLD, neg_mask_BL = self.encode([negative_prompt], use_chi_prompt=False, max_length=max_length)
        return torch.cat([neg_BLD, pos_BLD]), torch.cat([neg_mask_BL, pos_mask_BL])


REFINER_MAX_LENGTH = 1024


class RefinerTextEncoder(_GemmaBackbone):
    """Tokenizer + Gemma-3 backbone giving the stage-2 refiner its text input: EVERY layer's hidden states.

    The LTX-2 refiner conditions on the bare prompt (stripped, no chi prefix), left-padded to 1024 tokens, and
    on all ``num_layers + 1`` hidden states of the Gemma-3-12B backbone (embeddings included) stacked on a
    last axis; its text connectors normalise and project them. ``model`` may be a
    ``Gemma3ForConditionalGeneration`` (only its backbone runs, so no vocabulary logits are computed), a
    ``Gemma3Model`` or a text-only Gemma-3 stack: with text input they all give the same hidden states.
    """

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
        self.model = model.model if hasattr(model, "lm_head") else model
        self.tokenizer = tokenizer

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike[str],
        *,
        dtype: torch.dtype = torch.bfloat16,
        device: str | torch.device = "cpu",
        local_files_only: bool = False,
        tokenizer_path: str | os.PathLike[str] | None = None,
    ) -> RefinerTextEncoder:
        """Load a Gemma-3 folder (the release's ``refiner/text_encoder``, tokenizer files alongside).

        ``tokenizer_path`` defaults to ``path``. Raises :class:`InputError` naming ``--refiner_gemma_root``.
        """
        try:
            tokenizer = AutoTokenizer.from_pretrained(
                str(tokenizer_path or path), local_files_only=local_files_only
            )
            model = AutoModel.from_pretrained(
                str(path), dtype=dtype, local_files_only=local_files_only, use_safetensors=True
            )
        except OSError as err:
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise InputError(f"--refiner_gemma_root {str(path)!r}: {first_line}") from err
        return cls(model.to(device).eval(), tokenizer)

    @torch.no_grad()
    def all_hidden_states(
        self, prompt: str, *, max_length: int = REFINER_MAX_LENGTH
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode one prompt to ``(hidden_1LDK, mask_1L)``.

        Returns:
            hidden_1LDK: ``(1, max_length, D, K)`` hidden states in the model dtype on the model device,
                ``K = num_layers + 1`` (embedding output first), left padded.
            mask_1L: int64 attention mask, 1 for real tokens (the last ones).
        """
        if not isinstance(prompt, str):
            raise InputError("--prompt: the refiner prompt must be a string")
        tokens = self.tokenizer(
            [prompt.strip()],
            max_length=max_length,
            padding="max_length",
            padding_side="left",
            truncation=True,
            add_special_tokens=True,
            return_tensors="pt",
        )
        input_ids = tokens["input_ids"].to(self.device)
        mask_1L = tokens["attention_mask"].to(self.device)
        out = self.model(input_ids=input_ids, attention_mask=mask_1L, output_hidden_states=True)
        return torch.stack(out.hidden_states, dim=-1), mask_1L
