"""Launchers of the Triton GDN kernels (``backend="triton"`` of :mod:`sana_wm.ops.gdn`); forward only.

Shape letters: docs/conventions.md. The kernels and their precision scheme are in
:mod:`sana_wm.ops.gdn.triton_kernels`; this module checks inputs, allocates the maps, states and outputs,
picks launch shapes and runs the three steps (frame maps → scan → read-out) for each public function.

Head dims up to 128 (padded to a power of two ≥ 16 with masks). No autograd: forward only.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import triton
from torch import Tensor

from sana_wm.errors import InputError
from sana_wm.ops.gdn import triton_kernels as kernels
from sana_wm.ops.gdn.types import GDNState
from sana_wm.ops.launch import check_kernel_inputs, on_device

# Launch parameters (H100-oriented; see sana_wm/ops/README.md).
MAPS_BLOCK_S, MAPS_WARPS, MAPS_STAGES = 64, 8, 2
SCAN_BLOCK_R, SCAN_WARPS, SCAN_STAGES = 32, 8, 2
READ_BLOCK_S, READ_WARPS, READ_STAGES = 64, 8, 2
READ_BLOCK_S_FP32 = 32  # non-bf16 queries (split in three parts: more registers)
# Parts of the fp32 state in the read-out of bf16 queries: two give ~2⁻¹⁷ relative error in a one-off
# product whose result the model rounds to bf16 (2⁻⁹); fp32 queries use three.
READ_STATE_PARTS_BF16 = 2
# Read-out programs wanted in total; a frame's tokens are split over programs only below this count.
READ_TARGET_PROGRAMS = 1024
MAX_HEAD_DIM = 128

_MAP_TRANSITION, _MAP_WRITE, _MAP_TRANSITION_AND_Z = 0, 1, 2
_READ_NUMERATOR, _READ_DIVIDED, _READ_NUM_AND_DEN = 0, 1, 2


def _block(dim: int) -> int:
    return max(16, triton.next_power_of_2(dim))


def _parts(x: Tensor) -> int:
    """bf16 parts a kernel splits a tile of ``x`` into: bf16 is exact; other dtypes are upcast and split."""
    return 1 if x.dtype == torch.bfloat16 else 3


def _check_inputs(named: dict[str, Tensor]) -> None:
    """Shapes ``(B, N, T, S, E)`` (``v``: ``(…, V)``, ``beta``: ``(B, N, T, S)``, ``decay``: ``(B, N, T)``),
    floating point, one device (CUDA unless interpreted), no autograd, ``E, V ≤ 128``."""
    q, v = named["q"], named["v"]
    if q.dim() != 5:
        raise InputError(f"q: expected (B, N, T, S, E), got shape {tuple(q.shape)}")
    frames_shape = tuple(q.shape[:4])
    expected = {"v": (*frames_shape, v.shape[-1]), "beta": frames_shape, "decay": frames_shape[:3]}
    for name, x in named.items():
        if tuple(x.shape) != expected.get(name, tuple(q.shape)):
            raise InputError(
                f"{name}: expected shape {expected.get(name, tuple(q.shape))}, got {tuple(x.shape)}"
            )
        if not x.is_floating_point():
            raise InputError(f"{name}: expected a floating-point tensor, got {x.dtype}")
        if x.device != q.device:
            raise InputError(f"{name}: on {x.device}, but q is on {q.device}")
    check_kernel_inputs(named, interpreted=kernels.INTERPRETED)
    for name, x in (("q", q), ("v", v)):
        if x.shape[-1] > MAX_HEAD_DIM:
            raise InputError(
                f"{name}: head dim {x.shape[-1]} is above {MAX_HEAD_DIM}, the triton kernels' limit"
            )


def _frame_maps(
    k_kv: Tensor, k_z: Tensor | None, v: Tensor, beta: Tensor, decay: Tensor
) -> tuple[Tensor, Tensor]:
    """Maps of every frame: ``A (B·N, T, maps, 3, E, E)`` (bf16 parts) and ``b (B·N, T, R, E)`` (fp32).

    Map 0 and rows ``0 … V−1`` come from ``k_kv`` (``M``); with ``k_z``, map 1 and row ``V`` (``zᵀ``).
    """
    batch, heads, frames, tokens, e = k_kv.shape
    v_dim = v.shape[-1]
    has_z = k_z is not None
    a = torch.empty(batch * heads, frames, 1 + has_z, 3, e, e, dtype=torch.bfloat16, device=k_kv.device)
    b = torch.empty(batch * heads, frames, v_dim + has_z, e, dtype=torch.float32, device=k_kv.device)
    launches = [(_MAP_TRANSITION, k_kv, a[:, :, 0]), (_MAP_WRITE, k_kv, a[:, :, 0])]  # (write: A unused)
    if k_z is not None:
        launches.append((_MAP_TRANSITION_AND_Z, k_z, a[:, :, 1]))
    for mode, k, a_map in launches:
        # k·β is exactly two bf16 parts when both are bf16, else three.
        k_beta_parts = 2 if k.dtype == beta.dtype == torch.bfloat16 else 3
        kernels._frame_maps_kernel[(batch * heads * frames,)](
            k,
            v,
            beta,
            decay,
            a_map,
            b,
            heads,
            frames,
            tokens,
            e,
            v_dim,
            *k.stride(),
            *v.stride(),
            *beta.stride(),
            *decay.stride(),
            *a_map.stride()[:4],
            *b.stride()[:3],
            MODE=mode,
            K_PARTS=_parts(k),
            V_PARTS=_parts(v),
            KB_PARTS=k_beta_parts,
            EMULATE=kernels.INTERPRETED,
            BLOCK_S=MAPS_BLOCK_S,
            BLOCK_E=_block(e),
            BLOCK_V=_block(v_dim),
            num_warps=MAPS_WARPS,
            num_stages=MAPS_STAGES,
        )
    return a, b


def _scan(
    a: Tensor,
    b: Tensor,
    rows_kv: int,
    *,
    bidirectional: bool,
    init: Tensor | None = None,
    starts: Sequence[int] = (0,),
) -> tuple[Tensor, Tensor]:
    """States of every frame ``(B·N, T, R, E)`` and the forward direction's final state ``(B·N, R, E)``;
    bidirectional with chunk ``starts``: the backward direction stays inside each chunk."""
    bn, frames, rows, e = b.shape
    states = torch.zeros_like(b) if bidirectional else torch.empty_like(b)
    final = torch.empty(bn, rows, e, dtype=torch.float32, device=b.device)
    init_rows = final if init is None else init.contiguous()
    cuts = [s for s in starts if s > 0]
    cut_T = states  # any pointer: read only with cuts (no host-to-device copy, no sync, without them)
    if bidirectional and cuts:
        cut_T = torch.zeros(frames, dtype=torch.int32)
        cut_T[cuts] = 1
        cut_T = cut_T.to(b.device)
    # Row blocks vary fastest: the blocks reading the same maps run at the same time (L2 hits).
    grid = (triton.cdiv(rows_kv, SCAN_BLOCK_R) + (rows > rows_kv), 2 if bidirectional else 1, bn)
    kernels._affine_scan_kernel[grid](
        a,
        b,
        states,
        init_rows,
        final,
        cut_T,
        frames,
        e,
        rows_kv,
        *a.stride()[:5],
        *b.stride()[:3],
        *states.stride()[:3],
        *final.stride()[:2],
        BIDIRECTIONAL=bidirectional,
        HAS_INIT=init is not None,
        HAS_CUTS=bidirectional and bool(cuts),
        EMULATE=kernels.INTERPRETED,
        BLOCK_R=SCAN_BLOCK_R,
        BLOCK_E=_block(e),
        num_warps=SCAN_WARPS,
        num_stages=SCAN_STAGES,
    )
    return states, final


def _empty_like_queries(q: Tensor, v_dim: int) -> Tensor:
    """fp32 output ``(B, N, T, S, V)``: in ``q``'s memory layout when ``V == E`` (as ``torch.empty_like``)."""
    if v_dim == q.shape[-1]:
        return torch.empty_like(q, dtype=torch.float32)
    return torch.empty(*q.shape[:-1], v_dim, dtype=torch.float32, device=q.device)


def _read_out(
    q: Tensor, q_den: Tensor | None, states: Tensor, v_dim: int, mode: int, eps: float = 0.0
) -> tuple[Tensor, Tensor | None]:
    """``q·Mᵀ`` per frame (``mode``: numerator only, divided by ``q_den·z + eps``, or with ``q_den·z``).

    The output takes the memory layout of ``q_den`` if given (the main branch's unrotated queries), else
    of ``q``: the layout of the caller's ``q`` either way.
    """
    batch, heads, frames, tokens, e = q.shape
    out = _empty_like_queries(q if q_den is None else q_den, v_dim)
    den = (
        torch.empty(q.shape[:4], dtype=torch.float32, device=q.device) if mode == _READ_NUM_AND_DEN else None
    )
    block_s = READ_BLOCK_S if q.dtype == torch.bfloat16 else READ_BLOCK_S_FP32
    programs = batch * heads * frames
    splits = max(1, min(triton.cdiv(tokens, block_s), triton.cdiv(READ_TARGET_PROGRAMS, max(programs, 1))))
    tokens_per_program = block_s * max(1, triton.cdiv(triton.cdiv(tokens, splits), block_s))
    q_den_arg = q if q_den is None else q_den
    den_arg = out[..., 0] if den is None else den
    kernels._read_out_kernel[(programs, triton.cdiv(tokens, tokens_per_program))](
        q,
        q_den_arg,
        states,
        out,
        den_arg,
        heads,
        frames,
        tokens,
        e,
        v_dim,
        tokens_per_program,
        eps,
        *q.stride(),
        *q_den_arg.stride(),
        *states.stride()[:3],
        *out.stride(),
        *den_arg.stride(),
        MODE=mode,
        Q_PARTS=_parts(q),
        M_PARTS=READ_STATE_PARTS_BF16 if q.dtype == torch.bfloat16 else 3,
        EMULATE=kernels.INTERPRETED,
        BLOCK_S=block_s,
        BLOCK_E=_block(e),
        BLOCK_V=_block(v_dim),
        num_warps=READ_WARPS,
        num_stages=READ_STAGES,
    )
    return out, den


def _stacked_init(kv_BNVE: Tensor, z_BNE: Tensor | None) -> Tensor:
    """Initial state as ``(B·N, R, E)`` fp32 rows: ``M`` then, on the main branch, ``zᵀ``."""
    batch, heads, v_dim, e = kv_BNVE.shape
    rows = kv_BNVE.float().reshape(batch * heads, v_dim, e)
    if z_BNE is not None:
        rows = torch.cat([rows, z_BNE.float().reshape(batch * heads, 1, e)], dim=1)
    return rows


def _check_state(name: str, x: Tensor, shape: tuple[int, ...], device: torch.device) -> None:
    if tuple(x.shape) != shape or x.device != device:
        raise InputError(f"{name}: expected shape {shape} on {device}, got {tuple(x.shape)} on {x.device}")


def _main_init(initial_state: GDNState | None, q: Tensor, v: Tensor) -> Tensor | None:
    """The main branch's initial state as stacked rows (checked against ``q``/``v``), or None."""
    if initial_state is None:
        return None
    batch, heads, _, _, e = q.shape
    v_dim = v.shape[-1]
    _check_state("initial_state.kv", initial_state.kv, (batch, heads, v_dim, e), q.device)
    _check_state("initial_state.z", initial_state.z, (batch, heads, e), q.device)
    return _stacked_init(initial_state.kv, initial_state.z)


def _main_state(final: Tensor, q: Tensor, v: Tensor) -> GDNState:
    """The stacked final rows ``(B·N, V + 1, E)`` as a :class:`GDNState`."""
    batch, heads, _, _, e = q.shape
    v_dim = v.shape[-1]
    kv = final[:, :v_dim].reshape(batch, heads, v_dim, e).contiguous()
    return GDNState(kv=kv, z=final[:, v_dim].reshape(batch, heads, e).contiguous())


def gdn_forward_scan(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    q_rot: Tensor,
    k_rot: Tensor,
    beta: Tensor,
    decay: Tensor,
    initial_state: GDNState | None = None,
) -> tuple[Tensor, Tensor, GDNState]:
    """Forward (inclusive) main-branch scan; see :func:`sana_wm.ops.gdn.gdn_forward_scan`."""
    _check_inputs(dict(q=q, k=k, v=v, q_rot=q_rot, k_rot=k_rot, beta=beta, decay=decay))
    init = _main_init(initial_state, q, v)
    with on_device(q):
        a, b = _frame_maps(k_rot, k, v, beta, decay)
        states, final = _scan(a, b, v.shape[-1], bidirectional=False, init=init)
        del a, b  # the maps' memory is free for the output
        num, den = _read_out(q_rot, q, states, v.shape[-1], _READ_NUM_AND_DEN)
    assert den is not None
    return num, den, _main_state(final, q, v)


def gdn_bidirectional(
    q: Tensor, k: Tensor, v: Tensor, q_rot: Tensor, k_rot: Tensor, beta: Tensor, decay: Tensor, eps: float
) -> Tensor:
    """Bidirectional main branch (the chunk-causal scan with one chunk); see
    :func:`sana_wm.ops.gdn.gdn_bidirectional`."""
    return gdn_chunk_causal(q, k, v, q_rot, k_rot, beta, decay, eps, (0,))[0]


def cam_forward_scan(
    q: Tensor, k: Tensor, v: Tensor, beta: Tensor, decay: Tensor, initial_state: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Forward (inclusive) camera scan; see :func:`sana_wm.ops.gdn.cam_forward_scan`."""
    _check_inputs(dict(q=q, k=k, v=v, beta=beta, decay=decay))
    batch, heads, _, _, e = q.shape
    v_dim = v.shape[-1]
    init = None
    if initial_state is not None:
        _check_state("initial_state", initial_state, (batch, heads, v_dim, e), q.device)
        init = _stacked_init(initial_state, None)
    with on_device(q):
        a, b = _frame_maps(k, None, v, beta, decay)
        states, final = _scan(a, b, v_dim, bidirectional=False, init=init)
        del a, b  # the maps' memory is free for the output
        out, _ = _read_out(q, None, states, v_dim, _READ_NUMERATOR)
    return out, final.reshape(batch, heads, v_dim, e)


def cam_bidirectional(q: Tensor, k: Tensor, v: Tensor, beta: Tensor, decay: Tensor) -> Tensor:
    """Bidirectional numerator-only camera branch (the chunk-causal scan with one chunk); see
    :func:`sana_wm.ops.gdn.cam_bidirectional`."""
    return cam_chunk_causal(q, k, v, beta, decay, (0,))[0]


def gdn_chunk_causal(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    q_rot: Tensor,
    k_rot: Tensor,
    beta: Tensor,
    decay: Tensor,
    eps: float,
    starts: Sequence[int],
    initial_state: GDNState | None = None,
) -> tuple[Tensor, GDNState]:
    """Chunk-causal main branch; see :func:`sana_wm.ops.gdn.gdn_chunk_causal`."""
    _check_inputs(dict(q=q, k=k, v=v, q_rot=q_rot, k_rot=k_rot, beta=beta, decay=decay))
    init = _main_init(initial_state, q, v)
    with on_device(q):
        a, b = _frame_maps(k_rot, k, v, beta, decay)
        states, final = _scan(a, b, v.shape[-1], bidirectional=True, init=init, starts=starts)
        del a, b  # the maps' memory is free for the output
        out, _ = _read_out(q_rot, q, states, v.shape[-1], _READ_DIVIDED, eps)
    return out, _main_state(final, q, v)


def cam_chunk_causal(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    beta: Tensor,
    decay: Tensor,
    starts: Sequence[int],
    initial_state: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Chunk-causal camera branch; see :func:`sana_wm.ops.gdn.cam_chunk_causal`."""
    _check_inputs(dict(q=q, k=k, v=v, beta=beta, decay=decay))
    batch, heads, _, _, e = q.shape
    v_dim = v.shape[-1]
    init = None
    if initial_state is not None:
        _check_state("initial_state", initial_state, (batch, heads, v_dim, e), q.device)
        init = _stacked_init(initial_state, None)
    with on_device(q):
        a, b = _frame_maps(k, None, v, beta, decay)
        states, final = _scan(a, b, v_dim, bidirectional=True, init=init, starts=starts)
        del a, b  # the maps' memory is free for the output
        out, _ = _read_out(q, None, states, v_dim, _READ_NUMERATOR)
    return out, final.reshape(batch, heads, v_dim, e)
