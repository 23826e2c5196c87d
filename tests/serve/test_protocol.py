"""Client messages are checked once, with a code and a one-line reason; uploads within bytes and pixels."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from sana_wm.serve.protocol import (
    Camera,
    Control,
    Keys,
    LiveSettings,
    ProtocolError,
    ServeLimits,
    Start,
    decode_image,
    parse_message,
)

LIMITS = ServeLimits(max_upload_bytes=50_000, max_upload_pixels=200 * 200, max_chunks=4)


def _png(width: int, height: int, mode: str = "RGB", fmt: str = "PNG") -> str:
    buffer = io.BytesIO()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).convert(mode).save(buffer, fmt)
    return base64.b64encode(buffer.getvalue()).decode()


def test_good_messages() -> None:
    start = parse_message(
        json.dumps(
            {"type": "start", "image": None, "prompt": "a road", "settings": {"mapping": "v2", "steps": 3.0}}
        ),
        LIMITS,
    )
    assert isinstance(start, Start) and start.settings.mapping == "v2" and start.settings.steps == 3
    keys = parse_message('{"type": "keys", "keys": ["W", "ArrowLeft"], "seq": 3}', LIMITS, "v2")
    assert isinstance(keys, Keys) and keys.letters == frozenset("wj") and keys.seq == 3
    camera = parse_message(json.dumps({"type": "camera", "c2w": [np.eye(4).tolist()]}), LIMITS)
    assert isinstance(camera, Camera) and camera.c2w_F44.shape == (1, 4, 4)
    assert parse_message('{"type": "ping", "t": 5}', LIMITS) == Control("ping", 5)
    upload = parse_message(
        json.dumps({"type": "start", "image": "data:image/png;base64," + _png(64, 48)}), LIMITS
    )
    assert upload.image.size == (64, 48) and upload.image.mode == "RGB"


@pytest.mark.parametrize(
    ("text", "code", "words"),
    [
        (b"\x00\x01", "bad_message", "binary"),
        ("{", "bad_json", "not valid JSON"),
        ("[" * 100000 + "]" * 100000, "bad_json", "not valid JSON"),
        ("[1, 2]", "bad_message", "JSON object"),
        ('{"type": "launch"}', "bad_message", "unknown message type"),
        ('{"type": {"a": 1}}', "bad_message", "unknown message type"),
        ('{"type": "stop", "x": 1}', "bad_message", "unknown field"),
        ('{"type": "keys", "keys": "w"}', "bad_keys", "list"),
        ('{"type": "keys", "keys": ["q"]}', "bad_keys", "unknown key"),
        ('{"type": "keys", "keys": ["w"], "seq": -1}', "bad_keys", "seq"),
        ('{"type": "keys", "keys": ["w"], "seq": true}', "bad_keys", "seq"),
        ('{"type": "keys", "keys": ' + json.dumps(["w"] * 17) + "}", "bad_keys", "at most"),
        ('{"type": "camera", "c2w": [[1]]}', "bad_camera", "shape"),
        (
            '{"type": "camera", "c2w": [[[1e999, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]]}',
            "bad_camera",
            "finite",
        ),
        ('{"type": "start", "prompt": 5}', "bad_message", "prompt"),
        ('{"type": "start", "prompt": "' + "x" * 4001 + '"}', "bad_message", "prompt"),
        ('{"type": "start", "settings": []}', "bad_settings", "object"),
        ('{"type": "start", "settings": {"speed": 1}}', "bad_settings", "unknown key"),
        ('{"type": "start", "settings": {"mapping": "v3"}}', "bad_settings", "mapping"),
        ('{"type": "start", "settings": {"height": 100}}', "bad_settings", "multiple of 32"),
        ('{"type": "start", "settings": {"width": 4096}}', "bad_settings", "multiple of 32"),
        ('{"type": "start", "settings": {"steps": 0}}', "bad_settings", "steps"),
        ('{"type": "start", "settings": {"steps": "2"}}', "bad_settings", "steps must be int"),
        ('{"type": "start", "settings": {"hud": 1}}', "bad_settings", "hud must be bool"),
        ('{"type": "start", "settings": {"max_chunks": 5}}', "bad_settings", "max_chunks"),
        ('{"type": "start", "settings": {"seed": 1e30}}', "bad_settings", "seed"),
        ('{"type": "start", "settings": {"translation_speed": 1e999}}', "bad_settings", "translation_speed"),
        ('{"type": "start", "image": 7}', "bad_image", "base64"),
        ('{"type": "start", "image": "!!!"}', "bad_image", "not valid base64"),
        ('{"type": "start", "image": "aGVsbG8gd29ybGQ="}', "bad_image", "not a readable"),
    ],
)
def test_bad_messages_get_a_code_and_a_reason(text: str | bytes, code: str, words: str) -> None:
    with pytest.raises(ProtocolError, match=words) as caught:
        parse_message(text, LIMITS)
    assert caught.value.code == code


def test_upload_limits() -> None:
    # Over the byte limit: refused from the base64 length, before decoding.
    with pytest.raises(ProtocolError, match="MiB") as caught:
        decode_image(base64.b64encode(b"\x89PNG" + bytes(60_000)).decode(), LIMITS)
    assert caught.value.code == "upload_too_large"
    # Small file, too many pixels (a flat PNG compresses well): refused from the header, pixels never decoded.
    buffer = io.BytesIO()
    Image.new("L", (400, 300)).save(buffer, "PNG")
    assert len(buffer.getvalue()) < LIMITS.max_upload_bytes
    with pytest.raises(ProtocolError, match="400x300 pixels") as caught:
        decode_image(base64.b64encode(buffer.getvalue()).decode(), LIMITS)
    assert caught.value.code == "upload_too_large"
    # A truncated PNG, a tiny image, and the other accepted formats.
    truncated = base64.b64encode(base64.b64decode(_png(64, 64))[:200]).decode()
    with pytest.raises(ProtocolError, match="not a readable"):
        decode_image(truncated, LIMITS)
    with pytest.raises(ProtocolError, match="too small"):
        decode_image(_png(16, 64), LIMITS)
    for fmt in ("JPEG", "WEBP", "BMP", "GIF"):
        assert decode_image(_png(64, 40, fmt=fmt), LIMITS).size == (64, 40)


def test_settings_defaults_and_limits() -> None:
    assert LiveSettings.from_json(None, LIMITS) == LiveSettings()
    with pytest.raises(Exception, match="max_queue"):
        ServeLimits(max_queue=0)
    assert ServeLimits(max_upload_bytes=3 * 2**20).max_message_bytes > 2 * 4 * 2**20
