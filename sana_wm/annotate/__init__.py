"""Annotation: videos -> training clips with metric 6-DoF camera poses and intrinsics (``sana-wm annotate``).

- :mod:`~sana_wm.annotate.decode`: inputs, PyAV decoding at 16 fps with the official crop;
- :mod:`~sana_wm.annotate.filters`: cheap filters before SfM, camera filters after it;
- :mod:`~sana_wm.annotate.sfm`: pycolmap SfM (keyframes mapped, the rest registered by PnP);
- :mod:`~sana_wm.annotate.scale`: the metric-scale chain (gt > depth plug-in > camera height > none);
- :mod:`~sana_wm.annotate.geometry`: similarity alignment and trajectory errors;
- :mod:`~sana_wm.annotate.plugins`: optional learned models (metric depth, captions);
- :mod:`~sana_wm.annotate.clip` / :mod:`~sana_wm.annotate.pipeline` / :mod:`~sana_wm.annotate.output`:
  one clip, the whole run (resumable, with its report), the official layout.

pycolmap is an optional dependency (``pip install sana-wm[annotate]``), imported only when SfM runs.
"""

from sana_wm.annotate.filters import FilterSettings
from sana_wm.annotate.pipeline import annotate
from sana_wm.annotate.settings import AnnotateSettings
from sana_wm.annotate.sfm import SfmSettings

__all__ = ["AnnotateSettings", "FilterSettings", "SfmSettings", "annotate"]
