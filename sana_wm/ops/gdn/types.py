"""Recurrent state carried by the forward GDN scans (streaming: scan a clip in chunks, carry the state)."""

from __future__ import annotations

from typing import NamedTuple

import torch


class GDNState(NamedTuple):
    """Main-branch state (fp32): ``kv`` ``(B, N, V, E)`` (value × key) and ``z`` ``(B, N, E)``.

    The camera branch has no denominator; its state is a bare ``(B, N, V, E)`` tensor.
    """

    kv: torch.Tensor
    z: torch.Tensor
