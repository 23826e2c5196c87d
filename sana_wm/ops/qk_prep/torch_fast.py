"""q/k preparation with the real-valued RoPE rotation (``"torch"`` backend): :mod:`.reference`'s steps.

Shape letters: docs/conventions.md.
"""

from __future__ import annotations

import functools

from sana_wm.ops.qk_prep import reference
from sana_wm.ops.rope.torch_fast import apply_rope

qk_prep = functools.partial(reference.qk_prep, rotate=apply_rope)
