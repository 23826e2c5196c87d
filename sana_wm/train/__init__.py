"""Stage-1 training and distillation: run config, losses, FSDP2 parallelism, DCP checkpoints, the loop.

- :mod:`~sana_wm.train.config`: :class:`RunConfig` and strict ``a.b.c=value`` overrides.
- :mod:`~sana_wm.train.losses`: flow-matching loss, timestep sampling, chunk-timestep modes, conditioning.
- :mod:`~sana_wm.train.parallel`: process group, meta build, AC, compile, ``fully_shard``, initialisation.
- :mod:`~sana_wm.train.checkpoint`: DCP save/resume and export to one inference safetensors file.
- :mod:`~sana_wm.train.trainer`: the loop (:func:`train`), for every ``RunConfig.mode``.
- :mod:`~sana_wm.train.ode`, :mod:`~sana_wm.train.ode_pairs`: teacher trajectories at the student's levels
  (shards) and ODE regression onto them.
- :mod:`~sana_wm.train.dmd`: self-forcing DMD (the student's cached rollout, real score, critic).
"""

from sana_wm.train.checkpoint import export_inference, latest_checkpoint
from sana_wm.train.config import RunConfig, apply_overrides, config_from_dict, load_config_file
from sana_wm.train.dataset import DataConfig, SyntheticClips, TrainingDataset
from sana_wm.train.metrics import read_metrics
from sana_wm.train.trainer import Trainer, TrainResult, train

__all__ = [
    "DataConfig",
    "RunConfig",
    "SyntheticClips",
    "TrainResult",
    "Trainer",
    "TrainingDataset",
    "apply_overrides",
    "config_from_dict",
    "export_inference",
    "latest_checkpoint",
    "load_config_file",
    "read_metrics",
    "train",
]
