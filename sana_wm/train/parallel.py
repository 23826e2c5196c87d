"""Process group, device and the parallelised model: the only place that wraps ``sana_wm.models``.

Order (torchtitan's): build on ``meta`` → activation checkpointing per block → optional ``torch.compile``
per block → ``fully_shard`` per block, then the root (world size > 1) → ``to_empty`` → weights. The model
code stays single-device: it has no checkpointing switch and no ``torch.distributed`` import.

Activation checkpointing wraps each block in torch's ``checkpoint_wrapper`` (non-reentrant
``torch.utils.checkpoint``, RNG state preserved): the backward pass recomputes the block's forward. The
wrapper's hooks keep state-dict keys unchanged (``model.state_dict()`` and DCP's ``get_model_state_dict``
drop its ``_checkpoint_wrapped_module.`` level); ``named_parameters()`` keeps it, so code that keys
parameters by name uses :func:`parameters_by_name`.

Weights: random initialisation runs ``SanaWMTransformer.init_weights`` on the parameters in place, sharded or
not, under the run seed. It fills each parameter from a full-size fp32 tensor drawn on the CPU
(``sana_wm.models.attention.init_param_``), of which each rank keeps its shard (:func:`init_weights`), so
the initial weights are the same on 1 and N processes and on any device, which the "same loss on 1 and N
processes" check relies on; no rank holds more than one full parameter at a time. ``init_from`` loads a
checkpoint on rank 0 and broadcasts it into the shards with ``set_model_state_dict(full_state_dict=True,
broadcast_from_rank0=True)``.

Precision: ``autocast="auto"`` runs the forward under bf16 autocast on CUDA and in fp32 on the CPU;
FSDP2's ``MixedPrecisionPolicy`` gathers parameters in ``param_dtype`` and reduces gradients in
``reduce_dtype``; master weights and optimiser state stay fp32. ``auto`` gathers fp32 parameters (the
forward still computes in bf16 under autocast): that is the configuration verified to match the
single-process loss curve on 2 GPUs. Gathering bf16 parameters (``bf16``, the official setting) halves the
all-gather traffic but failed on one rank in its first 2-GPU run (it passes on CPU with gloo); it stays
opt-in until that is understood.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import functools
import os
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import _CHECKPOINT_PREFIX, checkpoint_wrapper
from torch.distributed.tensor import DTensor, distribute_tensor
from torch.overrides import TorchFunctionMode

from sana_wm.errors import InputError
from sana_wm.models import SanaWMConfig, SanaWMTransformer, load_transformer
from sana_wm.train.lora import LoraConfig, base_name, init_adapters, inject_lora, is_adapter

DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


@dataclass(kw_only=True, frozen=True)
class ParallelConfig:
    """Attributes:
    activation_checkpointing: recompute every block in the backward pass (official on).
    compile: ``torch.compile`` each block.
    param_dtype: FSDP2 dtype of gathered parameters; ``auto`` = fp32 (see the module docstring).
    reduce_dtype: FSDP2 dtype of the gradient reduce-scatter.
    reshard_after_forward: free gathered block parameters after the forward (official False: keep them
        for the backward, trading memory for one all-gather per block).
    autocast: ``auto`` = bf16 autocast on CUDA, none on the CPU; ``bf16`` (CUDA only); ``off``.
    """

    activation_checkpointing: bool = True
    compile: bool = False
    param_dtype: Literal["auto", "bf16", "fp32"] = "auto"
    reduce_dtype: Literal["bf16", "fp32"] = "fp32"
    reshard_after_forward: bool = False
    autocast: Literal["auto", "bf16", "off"] = "auto"


@dataclass(frozen=True)
class DistInfo:
    """Where this process runs: ``rank`` of ``world_size`` processes, its ``device``."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: Literal["auto", "cpu", "cuda"]) -> DistInfo:
    """Join the process group that ``torchrun`` describes (``WORLD_SIZE`` > 1), else run single-process.

    Backend: NCCL on CUDA, gloo on the CPU. Each process uses ``cuda:LOCAL_RANK`` on CUDA.
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("device: cuda requested but torch.cuda.is_available() is False")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    torch_device = torch.device("cuda", local_rank) if device == "cuda" else torch.device("cpu")
    if device == "cuda":
        torch.cuda.set_device(torch_device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device == "cuda" else "gloo")
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, device=torch_device)


def _mp_dtypes(cfg: ParallelConfig, device: torch.device) -> tuple[torch.dtype, torch.dtype]:
    param = "fp32" if cfg.param_dtype == "auto" else cfg.param_dtype
    return DTYPES[param], DTYPES[cfg.reduce_dtype]


def autocast_context(cfg: ParallelConfig, device: torch.device) -> contextlib.AbstractContextManager:
    """The forward's autocast: bf16 on CUDA (``auto``/``bf16``), nothing on the CPU."""
    if cfg.autocast == "bf16" and device.type != "cuda":
        raise InputError("parallel.autocast: bf16 autocast is for CUDA; use auto or off on the CPU")
    if cfg.autocast == "off" or device.type != "cuda":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16)


def apply_activation_checkpointing(model: SanaWMTransformer) -> None:
    """Wrap every block in ``checkpoint_wrapper`` (in place): its activations are recomputed in the backward
    pass instead of kept. Outputs, gradients and state-dict keys are unchanged."""
    for index, block in enumerate(model.blocks):
        model.blocks[index] = checkpoint_wrapper(block, preserve_rng_state=True)


def parameters_by_name(model: nn.Module) -> dict[str, nn.Parameter]:
    """``model.named_parameters()`` under their state-dict names (without the activation-checkpointing
    wrapper's ``_checkpoint_wrapped_module.`` level)."""
    return {name.replace(_CHECKPOINT_PREFIX, ""): param for name, param in model.named_parameters()}


def init_weights(model: SanaWMTransformer, seed: int) -> None:
    """``model.init_weights()`` under ``seed`` without touching the caller's RNG stream. The parameters may
    be FSDP2 shards: the result is the same as unsharded (every rank fills each full-size tensor on the CPU
    and keeps its part, see :class:`_CopyFullIntoShards`)."""
    with torch.random.fork_rng(devices=[]), _CopyFullIntoShards():
        torch.manual_seed(seed)
        model.init_weights()


class _CopyFullIntoShards(TorchFunctionMode):
    """While active, ``dtensor.copy_(tensor)`` from a plain full-size ``tensor`` (equal on every rank) copies
    this rank's part of it, without communication.

    ``init_weights`` writes parameters by copying full-size tensors into them. DTensor itself can treat a
    plain tensor as replicated (``implicit_replication``), but it then has no rule to copy it into a dimension
    sharded over more ranks than it has rows (a ``(2, D)`` adaLN table on 3 or more ranks).
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        if func is torch.Tensor.copy_ and isinstance(args[0], DTensor) and not isinstance(args[1], DTensor):
            dst, src = args[0], args[1]
            src = distribute_tensor(src, dst.device_mesh, dst.placements, src_data_rank=None)
            args = (dst, src, *args[2:])
        return func(*args, **(kwargs or {}))


@functools.cache
def unused_parameters(model_cfg: SanaWMConfig) -> frozenset[str]:
    """Names of parameters the forward never touches (no gradient): ``raymap_embedder`` (in the checkpoint,
    never computed) and the delta-rule gates that softmax blocks carry but do not use.

    Found by one forward/backward of a width-8 model with the same block layout on a 2×1×1 latent, so the
    list follows the model code instead of being written out here.
    """
    probe_cfg = dataclasses.replace(
        model_cfg,
        in_channels=1,
        hidden_size=8,
        head_dim=8,
        cross_attn_heads=1,
        caption_channels=1,
        mlp_ratio=1.0,
        plucker_channels=1,
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a few hundred tiny ops: threads only add overhead
    try:
        with torch.random.fork_rng(devices=[]):
            probe = SanaWMTransformer(probe_cfg)
        return _probe_unused(probe)
    finally:
        torch.set_num_threads(threads)


def _probe_unused(probe: SanaWMTransformer) -> frozenset[str]:
    camera_B_T20 = torch.zeros(1, 2, 20)
    camera_B_T20[..., [0, 5, 10, 15]] = 1.0
    camera_B_T20[..., 16:] = torch.tensor([1.0, 1.0, 0.5, 0.5])
    out = probe(
        torch.ones(1, 1, 2, 1, 1),
        torch.full((1, 1, 2), 500.0),
        torch.ones(1, 1, 1),
        torch.ones(1, 1),
        camera_B_T20,
        torch.ones(1, 1, 2, 1, 1),
    )
    out.sum().backward()
    return frozenset(name for name, p in probe.named_parameters() if p.grad is None)


def select_trainable(names: Collection[str], patterns: Sequence[str]) -> set[str]:
    """The names matched by any of the ``fnmatch`` ``patterns`` (case-sensitive; all names when there are
    none); a pattern that matches no name is an :class:`InputError` (a typo would silently train less)."""
    if not patterns:
        return set(names)
    chosen: set[str] = set()
    for pattern in patterns:
        matched = {name for name in names if fnmatch.fnmatchcase(name, pattern)}
        if not matched:
            example = ", ".join(sorted(names)[:3])
            raise InputError(
                f"trainable: pattern {pattern!r} matches no parameter of the model (names look like "
                f"{example}, ...)"
            )
        chosen |= matched
    return chosen


def trainable_names(model_cfg: SanaWMConfig, patterns: Sequence[str] = ()) -> list[str]:
    """Parameter names (model order) that :func:`build_model` trains for ``patterns``: those matched
    (:func:`select_trainable`) that the forward uses (not :func:`unused_parameters`)."""
    with torch.device("meta"):
        model = SanaWMTransformer(model_cfg)
    names = [name for name, _ in model.named_parameters()]
    chosen, unused = select_trainable(names, patterns), unused_parameters(model_cfg)
    return [name for name in names if name in chosen and name not in unused]


def build_model(
    model_cfg: SanaWMConfig,
    cfg: ParallelConfig,
    info: DistInfo,
    *,
    seed: int,
    init_from: str | None = None,
    trainable: Sequence[str] = (),
    lora: LoraConfig | None = None,
) -> SanaWMTransformer:
    """The trainable transformer on ``info.device``: plain when single-process, FSDP2-sharded otherwise
    (order in the module docstring).

    Only parameters matched by ``trainable`` (:func:`select_trainable`; all when empty) require gradients,
    and of those not the :func:`unused_parameters`, so every trainable parameter receives a gradient and
    the optimiser state (what DCP saves and expects on load) is complete from the first step. This is set
    on the meta model, before wrapping and sharding, so FSDP2 carries the flags into its shards.
    With ``lora`` enabled, peft's LoRA layers go in at the same point and only they train
    (:mod:`sana_wm.train.lora`).
    """
    with torch.device("meta"):
        model = SanaWMTransformer(model_cfg)
    trained = set(trainable_names(model_cfg, trainable))
    for name, param in model.named_parameters():
        param.requires_grad_(name in trained)
    if lora is not None and lora.enabled:
        inject_lora(model, lora)
    if cfg.activation_checkpointing:
        apply_activation_checkpointing(model)
    if cfg.compile:
        for block in model.blocks:
            block.compile()
    if info.distributed:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        mesh = init_device_mesh(info.device.type, (info.world_size,))
        param_dtype, reduce_dtype = _mp_dtypes(cfg, info.device)
        # No casting of forward inputs: FSDP2 would rebuild every dataclass argument to cast its tensors, so a
        # block's StreamCache entry (the self-forcing rollout's cache) would be written into a copy; the model
        # casts each branch's input to the weights' dtype itself and keeps its timesteps and residual in fp32.
        policy = MixedPrecisionPolicy(
            param_dtype=param_dtype, reduce_dtype=reduce_dtype, cast_forward_inputs=False
        )
        for block in model.blocks:
            fully_shard(block, mesh=mesh, mp_policy=policy, reshard_after_forward=cfg.reshard_after_forward)
        fully_shard(model, mesh=mesh, mp_policy=policy, reshard_after_forward=cfg.reshard_after_forward)
    model.to_empty(device=info.device)
    if init_from is None:
        init_weights(model, seed)
    else:
        _load_weights(model, model_cfg, init_from, info)
    if lora is not None and lora.enabled:
        with torch.random.fork_rng(devices=[]), _CopyFullIntoShards():
            torch.manual_seed(seed + 1)
            init_adapters(model)
    return model


def _load_weights(model: SanaWMTransformer, model_cfg: SanaWMConfig, path: str, info: DistInfo) -> None:
    """Weights from a checkpoint file (the run's model config wins; another shape fails the strict load),
    read on rank 0 and broadcast into the shards when sharded."""
    lora = any(is_adapter(name) for name, _ in model.named_parameters())
    if not info.distributed:
        full = _read_weights(model_cfg, path)
        if lora:  # base weights under the LoRA layers' names; the adapters are initialised afterwards
            full = {name: full[base_name(name)] for name in model.state_dict() if not is_adapter(name)}
        model.load_state_dict(full, strict=not lora)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    full = _read_weights(model_cfg, path) if info.is_main else {}
    if lora and info.is_main:
        full = {name: full[base_name(name)] for name in model.state_dict() if not is_adapter(name)}
    options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True, strict=not lora)
    set_model_state_dict(model, full, options=options)


def _read_weights(model_cfg: SanaWMConfig, path: str) -> dict[str, torch.Tensor]:
    return load_transformer(path, device="cpu", dtype=torch.float32, config=model_cfg).state_dict()


def all_reduce_mean(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Mean of ``value`` over ranks (identity when single-process)."""
    if info.distributed:
        value = value.detach().clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        value /= info.world_size
    return value


def any_rank(flag: bool, info: DistInfo) -> bool:
    """True if ``flag`` is set on any rank (so every rank takes the same branch)."""
    if not info.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    if info.distributed and dist.is_initialized():
        dist.destroy_process_group()


def unwrap_grad_norm(norm: torch.Tensor) -> torch.Tensor:
    """A ``clip_grad_norm_`` result as a plain tensor (FSDP2 returns a ``DTensor``)."""
    full = getattr(norm, "full_tensor", None)
    return full() if callable(full) else norm


def set_gradient_sync(model: nn.Module, enabled: bool) -> None:
    """Skip (False) or run (True) the FSDP2 gradient reduce-scatter; a no-op without FSDP."""
    setter = getattr(model, "set_requires_gradient_sync", None)
    if callable(setter):
        setter(enabled)
