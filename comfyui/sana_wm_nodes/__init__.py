"""SANA-WM custom nodes for ComfyUI: copy or link this folder into ``ComfyUI/custom_nodes/`` and install
sana-wm into ComfyUI's Python (``pip install -e <sana-wm checkout>``). See the README's ComfyUI section."""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
