"""Triton kernels of the frame-wise gated delta rule (``backend="triton"``): frame maps, scan, read-out.

Shape letters: docs/conventions.md (``R`` rows of the stacked state: ``V`` rows of ``M``, plus one row ``zᵀ``
on the main branch). Same affine form as ``torch_scan`` (``X_t = X_{t−1}·A_t + b_t``), in three kernels,
launched by :mod:`sana_wm.ops.gdn.triton_scan`:

1. :func:`_frame_maps_kernel`, one program per (batch·head, frame): loops over the frame's tokens in blocks of
   ``BLOCK_S`` and accumulates ``Kᵀ·diag(β)·K`` (emitting ``A_t = g_t·(I − ·)`` as three bf16 parts),
   ``Vᵀ·diag(β)·K`` (fp32) or, with the first, ``βᵀ·K`` (fp32) in registers. Launched once per product.
2. :func:`_affine_scan_kernel`, one program per (batch·head, direction, block of ``BLOCK_R`` state rows):
   ``T`` sequential steps inside the kernel, the state block in fp32 registers. Bidirectional launches run
   both directions at once and add the forward (inclusive) and backward (exclusive) states into one zeroed
   buffer; every slot gets exactly two addends, so the atomic sum does not depend on their order.
3. :func:`_read_out_kernel`, one program per (batch·head, frame, token range): ``Q_t·X_tᵀ`` for the frame's
   tokens, with the main branch's division by ``Q_t·z_t + eps`` fused in.

Precision: accumulation and states are fp32; inputs are read in their own dtype (no fp32 copies). Every
matrix product runs on bf16 tensor cores with fp32 accumulation, on exact bf16 splits of its operands
(:func:`_split`, :func:`_dot_parts`): a bf16 input is one part; an fp32 tile ``y`` is ``hi + mid + lo``
(``hi = bf16(y)``, ``mid = bf16(y − hi)``, ...; 24 significant bits, as fp32), ``k·β`` of bf16 ``k, β`` is
exactly ``hi + lo``. The products of parts whose orders sum to at most 2 are kept (6 for fp32 × fp32, 3 for
bf16 × fp32); what is dropped is below fp32 rounding. Exception: the read-out of bf16 queries splits the state
in two parts (``M_PARTS``; ~2⁻¹⁷ relative error in a product the model rounds to bf16). (Triton's
``input_precision="ieee"`` fp32 products run on CUDA cores and spill registers at these tile sizes on sm_90;
``"tf32x3"`` splits in registers and spills too.) The interpreter (``TRITON_INTERPRET=1``) cannot multiply
bf16 tiles, so there the bf16 products run on the exact fp32 upcasts (``EMULATE``; same numbers).

All jit code lives in this one module because the kernels share the split-product helpers; the launcher reads
the kernels (and :data:`INTERPRETED`) off this module at call time.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _split(x, PARTS: tl.constexpr):
    """``x`` as ``PARTS`` bf16 tiles summing to it (1: ``x`` is bf16 already; unused parts repeat ``hi``)."""
    if PARTS == 1:
        hi = x
        mid = x
        lo = x
    else:
        hi = x.to(tl.bfloat16)
        rest = x - hi.to(tl.float32)
        mid = rest.to(tl.bfloat16)
        lo = hi
        if PARTS == 3:
            lo = (rest - mid.to(tl.float32)).to(tl.bfloat16)
    return hi, mid, lo


@triton.jit
def _dot_bf16(a, b, acc, EMULATE: tl.constexpr):
    """``acc + a @ b`` for bf16 tiles with fp32 accumulation (interpreter: on exact fp32 upcasts)."""
    if EMULATE:
        acc = tl.dot(a.to(tl.float32), b.to(tl.float32), acc, input_precision="ieee")
    else:
        acc = tl.dot(a, b, acc)
    return acc


@triton.jit
def _dot_parts(
    a_hi,
    a_mid,
    a_lo,
    b_hi,
    b_mid,
    b_lo,
    acc,
    A_PARTS: tl.constexpr,
    B_PARTS: tl.constexpr,
    EMULATE: tl.constexpr,
):
    """``acc + a @ b`` from split operands: the products of parts of orders ``i + j ≤ max(parts) − 1``,
    smallest first (two 3-part operands: 6 products; a bf16 and a 3-part one: 3)."""
    if A_PARTS == 3:
        acc = _dot_bf16(a_lo, b_hi, acc, EMULATE)
    if B_PARTS == 3:
        acc = _dot_bf16(a_hi, b_lo, acc, EMULATE)
    if A_PARTS == 3 and B_PARTS == 3:
        acc = _dot_bf16(a_mid, b_mid, acc, EMULATE)
    if A_PARTS > 1:
        acc = _dot_bf16(a_mid, b_hi, acc, EMULATE)
    if B_PARTS > 1:
        acc = _dot_bf16(a_hi, b_mid, acc, EMULATE)
    return _dot_bf16(a_hi, b_hi, acc, EMULATE)


@triton.jit
def _dot_split(a, b, acc, A_PARTS: tl.constexpr, B_PARTS: tl.constexpr, EMULATE: tl.constexpr):
    """``acc + a @ b`` with ``a``, ``b`` split into ``A_PARTS``, ``B_PARTS`` bf16 parts (1: already bf16)."""
    a_hi, a_mid, a_lo = _split(a, A_PARTS)
    b_hi, b_mid, b_lo = _split(b, B_PARTS)
    return _dot_parts(a_hi, a_mid, a_lo, b_hi, b_mid, b_lo, acc, A_PARTS, B_PARTS, EMULATE)


@triton.jit
def _frame_maps_kernel(
    k_ptr,
    v_ptr,
    beta_ptr,
    decay_ptr,
    a_ptr,
    w_ptr,
    N,
    T,
    S,
    E,
    V,
    stride_k_b,
    stride_k_n,
    stride_k_t,
    stride_k_s,
    stride_k_e,
    stride_v_b,
    stride_v_n,
    stride_v_t,
    stride_v_s,
    stride_v_e,
    stride_beta_b,
    stride_beta_n,
    stride_beta_t,
    stride_beta_s,
    stride_g_b,
    stride_g_n,
    stride_g_t,
    stride_a_bn,
    stride_a_t,
    stride_a_part,
    stride_a_row,
    stride_w_bn,
    stride_w_t,
    stride_w_row,
    MODE: tl.constexpr,
    K_PARTS: tl.constexpr,
    V_PARTS: tl.constexpr,
    KB_PARTS: tl.constexpr,
    EMULATE: tl.constexpr,
    BLOCK_S: tl.constexpr,
    BLOCK_E: tl.constexpr,
    BLOCK_V: tl.constexpr,
):
    """One frame's map. MODE 0: ``A = g·(I − Kᵀdiag(β)K)`` as three bf16 parts; MODE 1: ``Vᵀdiag(β)K``
    (rows of ``w``); MODE 2: ``A`` and ``βᵀK`` (row ``V`` of ``w``)."""
    pid = tl.program_id(0)
    bn = pid // T
    t = (pid % T).to(tl.int64)
    b = (bn // N).to(tl.int64)
    n = (bn % N).to(tl.int64)
    bn = bn.to(tl.int64)
    offs_s = tl.arange(0, BLOCK_S)
    offs_e = tl.arange(0, BLOCK_E)
    offs_v = tl.arange(0, BLOCK_V)
    e_mask = offs_e < E
    v_mask = offs_v < V
    k_frame = k_ptr + b * stride_k_b + n * stride_k_n + t * stride_k_t
    v_frame = v_ptr + b * stride_v_b + n * stride_v_n + t * stride_v_t
    beta_frame = beta_ptr + b * stride_beta_b + n * stride_beta_n + t * stride_beta_t

    if MODE == 1:
        acc = tl.zeros((BLOCK_V, BLOCK_E), dtype=tl.float32)
    else:
        acc = tl.zeros((BLOCK_E, BLOCK_E), dtype=tl.float32)
    z_acc = tl.zeros((BLOCK_E,), dtype=tl.float32)
    for s0 in range(0, S, BLOCK_S):
        s = s0 + offs_s
        s_mask = s < S
        k = tl.load(
            k_frame + s[:, None] * stride_k_s + offs_e[None, :] * stride_k_e,
            mask=s_mask[:, None] & e_mask[None, :],
            other=0.0,
        )
        beta = tl.load(beta_frame + s * stride_beta_s, mask=s_mask, other=0.0).to(tl.float32)
        k_beta = k.to(tl.float32) * beta[:, None]  # (BLOCK_S, BLOCK_E) fp32
        if K_PARTS > 1:
            k = k.to(tl.float32)
        if MODE == 1:
            v = tl.load(
                v_frame + s[:, None] * stride_v_s + offs_v[None, :] * stride_v_e,
                mask=s_mask[:, None] & v_mask[None, :],
                other=0.0,
            )
            if V_PARTS > 1:
                v = v.to(tl.float32)
            acc = _dot_split(tl.trans(v), k_beta, acc, V_PARTS, KB_PARTS, EMULATE)
        else:
            acc = _dot_split(tl.trans(k_beta), k, acc, KB_PARTS, K_PARTS, EMULATE)
            if MODE == 2:
                z_acc += tl.sum(k_beta, axis=0)

    if MODE == 1:
        tl.store(
            w_ptr + bn * stride_w_bn + t * stride_w_t + offs_v[:, None] * stride_w_row + offs_e[None, :],
            acc,
            mask=v_mask[:, None] & e_mask[None, :],
        )
    else:
        g = tl.load(decay_ptr + b * stride_g_b + n * stride_g_n + t * stride_g_t).to(tl.float32)
        eye = (offs_e[:, None] == offs_e[None, :]).to(tl.float32)
        a_hi, a_mid, a_lo = _split(g * (eye - acc), 3)
        a_tile = a_ptr + bn * stride_a_bn + t * stride_a_t + offs_e[:, None] * stride_a_row + offs_e[None, :]
        a_mask = e_mask[:, None] & e_mask[None, :]
        tl.store(a_tile, a_hi, mask=a_mask)
        tl.store(a_tile + stride_a_part, a_mid, mask=a_mask)
        tl.store(a_tile + 2 * stride_a_part, a_lo, mask=a_mask)
        if MODE == 2:
            tl.store(
                w_ptr + bn * stride_w_bn + t * stride_w_t + V * stride_w_row + offs_e, z_acc, mask=e_mask
            )


@triton.jit
def _affine_scan_kernel(
    a_ptr,
    b_ptr,
    states_ptr,
    init_ptr,
    final_ptr,
    cut_ptr,
    T,
    E,
    R_KV,
    stride_a_bn,
    stride_a_t,
    stride_a_map,
    stride_a_part,
    stride_a_row,
    stride_b_bn,
    stride_b_t,
    stride_b_row,
    stride_s_bn,
    stride_s_t,
    stride_s_row,
    stride_i_bn,
    stride_i_row,
    BIDIRECTIONAL: tl.constexpr,
    HAS_INIT: tl.constexpr,
    HAS_CUTS: tl.constexpr,
    EMULATE: tl.constexpr,
    BLOCK_R: tl.constexpr,
    BLOCK_E: tl.constexpr,
):
    """``X_t = X_{t−1}·A_t + b_t`` for one block of state rows, all frames in sequence.

    Row blocks below ``R_KV`` step with map 0 (``M``); the block past them holds the single row ``R_KV``
    (``zᵀ``) and steps with map 1. Direction 1 (bidirectional only) runs ``t = T−1 … 0`` and emits the state
    *before* frame ``t`` (exclusive); direction 0 emits the state after it (inclusive), starts from the
    initial state (``HAS_INIT``) and writes the final one. ``HAS_CUTS``: ``cut_ptr`` holds one int32 per
    frame, nonzero at the first frame of a chunk; direction 1 empties its state after such a frame, so the
    backward direction stays inside each chunk (chunk-causal).
    """
    block = tl.program_id(0)
    direction = tl.program_id(1)
    bn = tl.program_id(2).to(tl.int64)
    is_z = (block * BLOCK_R >= R_KV).to(tl.int32)
    rows = block * BLOCK_R * (1 - is_z) + R_KV * is_z + tl.arange(0, BLOCK_R)
    row_mask = rows < R_KV + is_z
    cols = tl.arange(0, BLOCK_E)
    col_mask = cols < E
    tile_mask = row_mask[:, None] & col_mask[None, :]
    a_frames = a_ptr + bn * stride_a_bn + is_z * stride_a_map + cols[:, None] * stride_a_row + cols[None, :]
    a_mask = col_mask[:, None] & col_mask[None, :]
    b_frames = b_ptr + bn * stride_b_bn + rows[:, None] * stride_b_row + cols[None, :]
    s_frames = states_ptr + bn * stride_s_bn + rows[:, None] * stride_s_row + cols[None, :]

    x = tl.zeros((BLOCK_R, BLOCK_E), dtype=tl.float32)
    if HAS_INIT:
        init = tl.load(
            init_ptr + bn * stride_i_bn + rows[:, None] * stride_i_row + cols[None, :], mask=tile_mask
        )
        x = tl.where(direction == 0, init, x)
    for i in range(T):
        if BIDIRECTIONAL:
            t = i + direction * (T - 1 - 2 * i)
        else:
            t = i
        a_frame = a_frames + t * stride_a_t
        a_hi = tl.load(a_frame, mask=a_mask, other=0.0)
        a_mid = tl.load(a_frame + stride_a_part, mask=a_mask, other=0.0)
        a_lo = tl.load(a_frame + 2 * stride_a_part, mask=a_mask, other=0.0)
        b = tl.load(b_frames + t * stride_b_t, mask=tile_mask, other=0.0)
        x_hi, x_mid, x_lo = _split(x, 3)
        x_next = _dot_parts(x_hi, x_mid, x_lo, a_hi, a_mid, a_lo, b, 3, 3, EMULATE)
        if BIDIRECTIONAL:
            emitted = tl.where(direction == 0, x_next, x)
            tl.atomic_add(s_frames + t * stride_s_t, emitted, mask=tile_mask, sem="relaxed")
            if HAS_CUTS:
                cut = tl.load(cut_ptr + t)
                x_next = tl.where((direction == 1) & (cut != 0), 0.0, x_next)
        else:
            tl.store(s_frames + t * stride_s_t, x_next, mask=tile_mask)
        x = x_next
    if direction == 0:
        tl.store(
            final_ptr + bn * stride_i_bn + rows[:, None] * stride_i_row + cols[None, :], x, mask=tile_mask
        )


@triton.jit
def _read_out_kernel(
    q_ptr,
    qd_ptr,
    states_ptr,
    out_ptr,
    den_ptr,
    N,
    T,
    S,
    E,
    V,
    tokens_per_program,
    eps,
    stride_q_b,
    stride_q_n,
    stride_q_t,
    stride_q_s,
    stride_q_e,
    stride_qd_b,
    stride_qd_n,
    stride_qd_t,
    stride_qd_s,
    stride_qd_e,
    stride_s_bn,
    stride_s_t,
    stride_s_row,
    stride_o_b,
    stride_o_n,
    stride_o_t,
    stride_o_s,
    stride_o_v,
    stride_d_b,
    stride_d_n,
    stride_d_t,
    stride_d_s,
    MODE: tl.constexpr,
    Q_PARTS: tl.constexpr,
    M_PARTS: tl.constexpr,
    EMULATE: tl.constexpr,
    BLOCK_S: tl.constexpr,
    BLOCK_E: tl.constexpr,
    BLOCK_V: tl.constexpr,
):
    """``Q·Mᵀ`` for one frame's token range; MODE 1 divides by ``Q_d·z + eps``, MODE 2 stores ``Q_d·z``."""
    pid = tl.program_id(0)
    bn = pid // T
    t = (pid % T).to(tl.int64)
    b = (bn // N).to(tl.int64)
    n = (bn % N).to(tl.int64)
    bn = bn.to(tl.int64)
    offs_s = tl.arange(0, BLOCK_S)
    offs_e = tl.arange(0, BLOCK_E)
    offs_v = tl.arange(0, BLOCK_V)
    e_mask = offs_e < E
    v_mask = offs_v < V
    state = states_ptr + bn * stride_s_bn + t * stride_s_t
    # Mᵀ as an (E, V) tile: element (e, v) is M[v, e].
    m_t = tl.load(
        state + offs_v[None, :] * stride_s_row + offs_e[:, None],
        mask=e_mask[:, None] & v_mask[None, :],
        other=0.0,
    )
    m_hi, m_mid, m_lo = _split(m_t, M_PARTS)
    if MODE != 0:
        z = tl.load(state + V * stride_s_row + offs_e, mask=e_mask, other=0.0)
    q_frame = q_ptr + b * stride_q_b + n * stride_q_n + t * stride_q_t
    qd_frame = qd_ptr + b * stride_qd_b + n * stride_qd_n + t * stride_qd_t
    o_frame = out_ptr + b * stride_o_b + n * stride_o_n + t * stride_o_t
    d_frame = den_ptr + b * stride_d_b + n * stride_d_n + t * stride_d_t

    s_begin = tl.program_id(1) * tokens_per_program
    s_end = tl.minimum(s_begin + tokens_per_program, S)
    for s0 in range(s_begin, s_end, BLOCK_S):
        s = s0 + offs_s
        s_mask = s < s_end
        q = tl.load(
            q_frame + s[:, None] * stride_q_s + offs_e[None, :] * stride_q_e,
            mask=s_mask[:, None] & e_mask[None, :],
            other=0.0,
        )
        if Q_PARTS > 1:
            q = q.to(tl.float32)
        q_hi, q_mid, q_lo = _split(q, Q_PARTS)
        num = tl.zeros((BLOCK_S, BLOCK_V), dtype=tl.float32)
        num = _dot_parts(q_hi, q_mid, q_lo, m_hi, m_mid, m_lo, num, Q_PARTS, M_PARTS, EMULATE)
        if MODE != 0:
            qd = tl.load(
                qd_frame + s[:, None] * stride_qd_s + offs_e[None, :] * stride_qd_e,
                mask=s_mask[:, None] & e_mask[None, :],
                other=0.0,
            ).to(tl.float32)
            den = tl.sum(qd * z[None, :], axis=1)
            if MODE == 1:
                num = num / (den[:, None] + eps)
            else:
                tl.store(d_frame + s * stride_d_s, den, mask=s_mask)
        tl.store(
            o_frame + s[:, None] * stride_o_s + offs_v[None, :] * stride_o_v,
            num,
            mask=s_mask[:, None] & v_mask[None, :],
        )


# Whether the Triton interpreter runs these kernels (TRITON_INTERPRET=1 when they were decorated).
INTERPRETED = not isinstance(_read_out_kernel, triton.runtime.JITFunction)
