"""Settings of an annotation run and the clip window the pipeline collects frames into."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from sana_wm.annotate.filters import FilterSettings
from sana_wm.annotate.sfm import SfmSettings
from sana_wm.errors import InputError
from sana_wm.utils.video_io import VideoWriter

VAE_FRAMES = 8


@dataclass(frozen=True)
class AnnotateSettings:
    """What every clip of a run shares. ``camera_height_m`` None disables the height prior."""

    fps: float = 16.0
    height: int = 704
    width: int = 1280
    clip_frames: int = 961
    min_frames: int = 33
    camera_height_m: float | None = 1.6
    clips_per_shard: int = 64
    crf: int = 18
    sfm: SfmSettings = field(default_factory=SfmSettings)
    filters: FilterSettings = field(default_factory=FilterSettings)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.fps) and 0 < self.fps <= 240):
            raise InputError(f"--fps: must be in (0, 240], got {self.fps}")
        if min(self.height, self.width) < 32 or self.height % 32 or self.width % 32:
            raise InputError(
                f"--size: height and width must be multiples of 32, got {self.height}x{self.width}"
            )
        if self.clip_frames < 9 or (self.clip_frames - 1) % VAE_FRAMES:
            raise InputError(f"--clip_frames: must be 8k+1 and at least 9, got {self.clip_frames}")
        if not 9 <= self.min_frames <= self.clip_frames:
            raise InputError(
                f"--min_frames: must be 9 to --clip_frames ({self.clip_frames}), got {self.min_frames}"
            )
        if self.camera_height_m is not None and not (0.05 <= self.camera_height_m <= 1000):
            raise InputError(f"--camera_height: must be 0.05 to 1000 metres, got {self.camera_height_m}")
        if self.clips_per_shard < 1:
            raise InputError(f"--clips_per_shard: must be >= 1, got {self.clips_per_shard}")
        if not 0 <= self.crf <= 51:
            raise InputError(f"--crf: must be 0 to 51, got {self.crf}")
        if self.sfm.focal_px is not None and not (math.isfinite(self.sfm.focal_px) and self.sfm.focal_px > 0):
            raise InputError(f"--focal: must be a positive number of pixels, got {self.sfm.focal_px}")
        if self.sfm.keyframe_stride < 1 or not 64 <= self.sfm.max_image_size <= 4096:
            raise InputError("--keyframe_stride must be >= 1 and --sfm_size 64 to 4096")


@dataclass
class Window:
    """A clip being collected: its mp4 writer, frames not yet written (fewer than 8), analysis frames."""

    key: str
    writer: VideoWriter | None
    pending: list[np.ndarray | None] = field(default_factory=list)
    small: list[np.ndarray] = field(default_factory=list)
    thumbs: list[np.ndarray] = field(default_factory=list)
    source_index: list[int] = field(default_factory=list)
    written: int = 0
    ends_at_cut: bool = False

    @property
    def length(self) -> int:
        return self.written + len(self.pending)
