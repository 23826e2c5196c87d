"""Single-device SANA-WM modules: the stage-1 transformer, its config, presets and checkpoint I/O."""

from sana_wm.models.checkpoint_io import load_transformer, save_transformer
from sana_wm.models.config import SanaWMConfig, config_from_diffusers, config_from_official_yaml
from sana_wm.models.dit import MemoryPlan, SanaWMTransformer
from sana_wm.models.variants import PRESETS, preset, sana_wm_1600m_720p, tiny

__all__ = [
    "PRESETS",
    "MemoryPlan",
    "SanaWMConfig",
    "SanaWMTransformer",
    "config_from_diffusers",
    "config_from_official_yaml",
    "load_transformer",
    "preset",
    "sana_wm_1600m_720p",
    "save_transformer",
    "tiny",
]
