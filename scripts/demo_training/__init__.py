"""How the bundled demo model (``sana_wm.inference.demo_model``) is trained: ``scripts/train_demo_model.py``.

- :mod:`~demo_training.recipe`: :class:`DemoRecipe` (sizes, budgets, optimisers), full and tiny.
- :mod:`~demo_training.data`: rendering (device + CPU workers), symmetry variants, latent dataset.
- :mod:`~demo_training.vae_training`: the small LTX-2-class VAE's loop and the latent cache.
- :mod:`~demo_training.evaluate`: motion agreement and PSNR against the true renders.
- :mod:`~demo_training.run`: the phases in a wall-clock budget and the files written.

Not imported by the package at run time. This ``__init__`` imports nothing, so the CPU render workers (which
import :mod:`~demo_training.data`) do not pay for diffusers.
"""
