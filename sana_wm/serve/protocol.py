"""The JSON-over-WebSocket protocol of ``sana-wm serve``: what a client may send, checked once, typed.

Every client message is one JSON object (a text frame) with a ``type``; anything else is answered with an
``error`` message (:class:`ProtocolError`, with a ``code``) and the connection stays open. The full protocol,
server messages included, is in the README ("Live in the browser: sana-wm serve").

Client → server:

- ``start``: ``{"type": "start", "image": null, "prompt": "...", "settings": {...}}`` (:class:`LiveSettings`;
  ``image``: base64 or a ``data:`` URL; null: the model's bundled first frame);
- ``keys``: ``{"type": "keys", "keys": ["w", "l"], "seq": 7}``: the keys held now (replaces the previous
  state; ``seq`` increases, the frames made from it carry it back as ``keys_seq``);
- ``camera``: ``{"type": "camera", "c2w": [[[4x4]], ...]}``: poses for the next frames (before keys);
- ``stop`` (end the generation, keep the recording), ``reset`` (end it and drop the recording), ``ping``.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import math
import warnings
from dataclasses import dataclass, fields
from typing import Any

from PIL import Image

from sana_wm.camera import MAPPINGS
from sana_wm.errors import InputError
from sana_wm.serve.controls import check_poses, key_letters

MAX_PROMPT_CHARS = 4000
MAX_KEYS_PER_MESSAGE = 16
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF")


class ProtocolError(Exception):
    """A message the server refuses; ``code`` names the kind (``bad_json``, ``bad_message``,
    ``bad_settings``, ``bad_image``, ``upload_too_large``, ``busy``, ...), ``str()`` says what is wrong."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, kw_only=True)
class ServeLimits:
    """What the server accepts (set by ``sana-wm serve`` flags).

    Attributes:
        max_upload_bytes: decoded size of an uploaded image.
        max_upload_pixels: width x height of an uploaded image (checked before its pixels are decoded).
        max_chunks: chunks per session (24 frames, 1.5 s at 16 fps each; 13: the official demo's 40 latents).
        max_side: largest ``height`` / ``width`` a client may ask for.
        max_steps: largest ``steps`` a client may ask for.
        max_queue: sessions waiting for the device; more get ``busy`` with ``queue_full``.
        idle_timeout_s: a paused session that others wait for ends after this long without input.
    """

    max_upload_bytes: int = 8 * 2**20
    max_upload_pixels: int = 4096 * 4096
    max_chunks: int = 13
    max_side: int = 1280
    max_steps: int = 100
    max_queue: int = 8
    idle_timeout_s: float = 120.0

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise InputError(f"--{item.name}: must be a number > 0, got {value!r}")

    @property
    def max_message_bytes(self) -> int:
        """Largest WebSocket message: a base64 upload of twice the limit, so a slightly oversize upload gets
        an ``upload_too_large`` message instead of the socket closing (code 1009)."""
        return 2 * (4 * self.max_upload_bytes // 3 + 4) + 64 * 1024


@dataclass(frozen=True, kw_only=True)
class LiveSettings:
    """A session's settings (the ``settings`` of ``start``; unset fields take the model's defaults).

    Attributes:
        mapping: action key mapping, ``"v1"`` (a/d strafe, j/l yaw) or ``"v2"`` (a/d yaw, j/l strafe,
            smoothed velocity).
        height, width: frame size (multiples of 32).
        steps: sampling steps per chunk (models without a distilled step list).
        seed: noise seed.
        max_chunks: the session ends after this many chunks.
        pause_when_idle: stop sampling while no key is held and nothing moves (resumes on a key).
        hud: draw the action HUD on the frames (and in the recording).
        jpeg_quality: of the frames sent.
        translation_speed, rotation_speed_deg: per frame (None: the mapping's defaults).
    """

    mapping: str = "v1"
    height: int | None = None
    width: int | None = None
    steps: int | None = None
    seed: int = 42
    max_chunks: int | None = None
    pause_when_idle: bool = True
    hud: bool = True
    jpeg_quality: int = 85
    translation_speed: float | None = None
    rotation_speed_deg: float | None = None

    @classmethod
    def from_json(cls, raw: object, limits: ServeLimits) -> LiveSettings:
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ProtocolError("bad_settings", "settings: expected an object")
        known = {item.name: item for item in fields(cls)}
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise ProtocolError(
                "bad_settings", f"settings: unknown key(s) {', '.join(map(str, unknown))[:200]}"
            )
        values = {}
        for name, value in raw.items():
            kind = known[name].type
            if value is None and "None" in str(kind):
                continue
            values[name] = _typed(name, value, str(kind))
        settings = cls(**values)
        settings._check(limits)
        return settings

    def _check(self, limits: ServeLimits) -> None:
        def bad(message: str) -> ProtocolError:
            return ProtocolError("bad_settings", f"settings: {message}")

        if self.mapping not in MAPPINGS:
            raise bad(f"mapping must be one of {', '.join(MAPPINGS)}, got {self.mapping[:20]!r}")
        for name in ("height", "width"):
            side = getattr(self, name)
            if side is not None and not (32 <= side <= limits.max_side and side % 32 == 0):
                raise bad(f"{name} must be a multiple of 32 in [32, {limits.max_side}], got {side}")
        if self.steps is not None and not 1 <= self.steps <= limits.max_steps:
            raise bad(f"steps must be in [1, {limits.max_steps}], got {self.steps}")
        if not 0 <= self.seed < 2**63:
            raise bad(f"seed must be in [0, 2^63), got {self.seed}")
        if self.max_chunks is not None and not 1 <= self.max_chunks <= limits.max_chunks:
            raise bad(f"max_chunks must be in [1, {limits.max_chunks}], got {self.max_chunks}")
        if not 30 <= self.jpeg_quality <= 95:
            raise bad(f"jpeg_quality must be in [30, 95], got {self.jpeg_quality}")
        for name, top in (("translation_speed", 1.0), ("rotation_speed_deg", 10.0)):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and 0 < value <= top):
                raise bad(f"{name} must be in (0, {top:g}], got {value}")


def _typed(name: str, value: Any, kind: str) -> Any:
    """``value`` if it has the field's JSON type (bool is not a number, an integral float is an int)."""
    if "bool" in kind:
        if isinstance(value, bool):
            return value
    elif "int" in kind:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
            return int(value)
    elif "float" in kind:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif "str" in kind and isinstance(value, str):
        return value
    expected = kind.replace(" | None", "").replace("None | ", "")
    raise ProtocolError("bad_settings", f"settings: {name} must be {expected}, got {type(value).__name__}")


@dataclass(frozen=True)
class Start:
    image: Image.Image | None
    prompt: str
    settings: LiveSettings


@dataclass(frozen=True)
class Keys:
    letters: frozenset[str]
    names: tuple[str, ...]
    seq: int


@dataclass(frozen=True)
class Camera:
    c2w_F44: Any  # np.ndarray (F, 4, 4) float64


@dataclass(frozen=True)
class Control:
    """``stop``, ``reset`` or ``ping`` (``echo``: the ping's ``t``, returned in the pong)."""

    kind: str
    echo: Any = None


Message = Start | Keys | Camera | Control


def parse_message(text: str | bytes | None, limits: ServeLimits, mapping: str = "v1") -> Message:
    """Check one client message; ``mapping``: the session's, for arrow keys. Raises :class:`ProtocolError`."""
    if not isinstance(text, str):
        raise ProtocolError("bad_message", "messages must be JSON text frames, not binary")
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError):
        raise ProtocolError("bad_json", "message is not valid JSON") from None
    if not isinstance(raw, dict):
        raise ProtocolError("bad_message", "message must be a JSON object with a 'type'")
    kind = raw.get("type")
    allowed = {
        "start": {"type", "image", "prompt", "settings"},
        "keys": {"type", "keys", "seq"},
        "camera": {"type", "c2w"},
        "stop": {"type"},
        "reset": {"type"},
        "ping": {"type", "t"},
    }
    if not isinstance(kind, str) or kind not in allowed:
        shown = kind[:30] if isinstance(kind, str) else type(kind).__name__
        raise ProtocolError("bad_message", f"unknown message type {shown!r}; expected {', '.join(allowed)}")
    extra = sorted(map(str, set(raw) - allowed[kind]))
    if extra:
        raise ProtocolError("bad_message", f"{kind}: unknown field(s) {', '.join(extra)[:200]}")
    if kind == "start":
        return _start(raw, limits)
    if kind == "keys":
        return _keys(raw, mapping)
    if kind == "camera":
        try:
            return Camera(check_poses(raw.get("c2w"), max_poses=24 * limits.max_chunks))
        except InputError as err:
            raise ProtocolError("bad_camera", str(err)) from None
    echo = raw.get("t") if isinstance(raw.get("t"), int | float | str) else None
    return Control(kind, echo if not isinstance(echo, str) else echo[:64])


def _start(raw: dict[str, Any], limits: ServeLimits) -> Start:
    prompt = raw.get("prompt", "")
    if prompt is None:
        prompt = ""
    if not isinstance(prompt, str) or len(prompt) > MAX_PROMPT_CHARS:
        raise ProtocolError(
            "bad_message", f"start: prompt must be a string of at most {MAX_PROMPT_CHARS} chars"
        )
    settings = LiveSettings.from_json(raw.get("settings"), limits)
    image = raw.get("image")
    if image is not None and not isinstance(image, str):
        raise ProtocolError("bad_image", "start: image must be null or a base64 string")
    return Start(None if image is None else decode_image(image, limits), prompt, settings)


def _keys(raw: dict[str, Any], mapping: str) -> Keys:
    keys, seq = raw.get("keys"), raw.get("seq", 0)
    if (
        not isinstance(keys, list)
        or len(keys) > MAX_KEYS_PER_MESSAGE
        or not all(isinstance(k, str) for k in keys)
    ):
        raise ProtocolError("bad_keys", f"keys: expected a list of at most {MAX_KEYS_PER_MESSAGE} key names")
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq < 2**53:
        raise ProtocolError("bad_keys", "keys: seq must be an integer in [0, 2^53)")
    try:
        letters = key_letters(keys, mapping)
    except InputError as err:
        raise ProtocolError("bad_keys", str(err)) from None
    return Keys(letters, tuple(k.lower() for k in keys), seq)


def decode_image(data: str, limits: ServeLimits) -> Image.Image:
    """A base64 image (optionally a ``data:`` URL) → RGB, within the byte and pixel limits, checked to be
    one of :data:`IMAGE_FORMATS` by decoding it (PIL); every failure is a :class:`ProtocolError`."""
    if data.startswith("data:"):
        data = data.partition(",")[2]
    if len(data) > 4 * (limits.max_upload_bytes // 3 + 2):
        raise ProtocolError("upload_too_large", _too_large(len(data) * 3 // 4, limits))
    try:
        blob = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError("bad_image", "upload: image is not valid base64") from None
    if len(blob) > limits.max_upload_bytes:
        raise ProtocolError("upload_too_large", _too_large(len(blob), limits))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(blob), formats=IMAGE_FORMATS) as image:
                width, height = image.size
                if width * height > limits.max_upload_pixels:
                    raise ProtocolError(
                        "upload_too_large",
                        f"upload: {width}x{height} pixels; at most {limits.max_upload_pixels} in all",
                    )
                if min(width, height) < 32:
                    raise ProtocolError(
                        "bad_image", f"upload: {width}x{height} is too small (at least 32x32)"
                    )
                image.seek(0)
                return image.convert("RGB")
    except ProtocolError:
        raise
    except (Exception, Image.DecompressionBombWarning):  # PIL raises many kinds on hostile files
        raise ProtocolError("bad_image", "upload: not a readable PNG, JPEG, WebP, BMP or GIF image") from None


def _too_large(size: int, limits: ServeLimits) -> str:
    return f"upload: {size / 2**20:.1f} MiB image; at most {limits.max_upload_bytes / 2**20:.1f} MiB"
