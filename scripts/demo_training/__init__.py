"""How the bundled demo model (``sana_wm.inference.demo_model``) is trained: ``scripts/train_demo_model.py``.

- :mod:`~demo_training.recipe`: :class:`DemoRecipe` (sizes, budgets, optimisers), full and tiny.
- :mod:`~demo_training.data`: rendering (device + CPU workers), symmetry variants, latent dataset.
- :mod:`~demo_training.vae_training`: the small LTX-2-class VAE's loop and the latent cache.
- :mod:`~demo_training.evaluate`: motion agreement and PSNR against the true renders.
- :mod:`~demo_training.run`: the phases in a wall-clock budget and the files written.
- :mod:`~demo_training.chunk_causal`: the chunk-causal patch of a trained demo model.

Not imported by the package at run time. This ``__init__`` imports nothing heavy, so the CPU render workers
(which import :mod:`~demo_training.data`) do not pay for diffusers. The modules import each other as
``demo_training.*`` (``scripts/`` on the path, as for the script and the tests); imported as
``scripts.demo_training`` (``python -m scripts.demo_training.run`` from the repository root) it puts
``scripts/`` on the path first.
"""

import sys
from pathlib import Path

if __name__ == "scripts.demo_training":
    _SCRIPTS = str(Path(__file__).resolve().parents[1])
    if _SCRIPTS not in sys.path:
        sys.path.insert(0, _SCRIPTS)
