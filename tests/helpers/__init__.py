"""What several test folders share, imported as ``helpers`` (pytest's ``pythonpath`` puts tests/ on the path).

- :mod:`helpers.tiny_parts`: tiny random pipeline components (Gemma-2, tokenizer, LTX-2 VAE, the diffusers
  oracle and ours), their on-disk layouts and image helpers;
- :mod:`helpers.tiny_refiner`: the tiny stage-2 refiner's parts, prompt and latents;
- :mod:`helpers.parity`: the perturbed tiny oracle, random model inputs, the oracle's fp32 softmax switch;
- :mod:`helpers.training`: the debug training recipe with overrides.

The tiny model configs themselves live in :mod:`sana_wm.tiny` (``sana-wm bench --tiny`` uses them too).
"""
