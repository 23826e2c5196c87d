"""Evaluation against ground truth: per-frame metrics and the held-out procedural-world benchmark.

- :mod:`~sana_wm.eval.metrics`: PSNR, SSIM (torchmetrics) and the flow-agreement camera-following score.
- :mod:`~sana_wm.eval.world_eval`: the evaluation loop over held-out clips with two baselines
  (:func:`evaluate_worlds`; clip seeds from :data:`EVAL_SEED_BASE` up are never used for training).
- :mod:`~sana_wm.eval.report`: the per-frame plot and the side-by-side videos.
"""

from sana_wm.eval.metrics import (
    CameraFollowing,
    camera_following,
    flow_agreement,
    optical_flow,
    psnr_per_frame,
    ssim_per_frame,
)
from sana_wm.eval.world_eval import (
    EVAL_SEED_BASE,
    METHODS,
    EvalSettings,
    GenerateFn,
    evaluate_worlds,
    pipeline_generate_fn,
    static_path,
    stream_generate_fn,
)

__all__ = [
    "EVAL_SEED_BASE",
    "METHODS",
    "CameraFollowing",
    "EvalSettings",
    "GenerateFn",
    "camera_following",
    "evaluate_worlds",
    "flow_agreement",
    "optical_flow",
    "pipeline_generate_fn",
    "stream_generate_fn",
    "psnr_per_frame",
    "ssim_per_frame",
    "static_path",
]
