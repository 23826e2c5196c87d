"""Stateless flow-matching sampling: convention (flow), sigma grids (schedules), solvers, guidance, and the
chunk-causal teacher and streaming-student samplers (chunked)."""

from sana_wm.samplers.chunked import (
    autoregressive_segments,
    chunk_starts,
    read_window,
    sample_chunk_flow_euler,
    sample_self_forcing,
    student_sigmas,
)
from sana_wm.samplers.guidance import cfg, cfg_model_fn
from sana_wm.samplers.schedules import flow_sigmas, flow_timesteps, shift_sigmas
from sana_wm.samplers.solvers import ModelFn, Progress, sample_euler, sample_heun, sample_ltx_euler

__all__ = [
    "ModelFn",
    "autoregressive_segments",
    "chunk_starts",
    "read_window",
    "sample_chunk_flow_euler",
    "sample_self_forcing",
    "student_sigmas",
    "Progress",
    "cfg",
    "cfg_model_fn",
    "flow_sigmas",
    "flow_timesteps",
    "sample_euler",
    "sample_heun",
    "sample_ltx_euler",
    "shift_sigmas",
]
