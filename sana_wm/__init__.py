"""sana-wm: a fast, lean and trainable implementation of SANA-WM, a camera-controlled video world model."""

__version__ = "0.1.0"
