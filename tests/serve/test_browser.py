"""End to end in headless Chromium (Debian's ``chromium``, driven by Python Playwright): open the page, start
a world, hold W for 2 s, then L; frames arrive, the picture changes, the reported pose moves forward and
then yaws right; a bad message and an oversize upload show errors while the server keeps serving; a second
browser gets "busy" and its place in line."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from serve_screenshot import CHROMIUM_FLAGS, chromium_path  # scripts/ is on pytest's path

from .conftest import start_server

CHROMIUM = chromium_path()

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)"
)


@pytest.fixture
def browser() -> Any:
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (the test extra)"
    )
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


def _state(page: Any, expression: str) -> Any:
    return page.evaluate(f"() => window.sanaState.{expression}")


def _canvas_pixels(page: Any) -> np.ndarray:
    png = page.locator("#canvas").screenshot()
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)


def test_walk_in_the_browser(engine: Any, browser: Any, tmp_path: Path) -> None:
    server = start_server(engine, tmp_path, max_upload_bytes=64 * 1024, max_chunks=40)
    try:
        page = browser.new_page(viewport={"width": 1100, "height": 700})
        page.goto(server.url + "/")
        page.wait_for_function("() => window.sanaState.state === 'idle'")
        page.select_option("#size", index=3)  # 96 x 64
        page.fill("#steps", "2")
        page.click("#start")
        page.wait_for_function("() => window.sanaState.shown > 0", timeout=30_000)
        before = _canvas_pixels(page)

        page.locator("#canvas").focus()
        page.keyboard.down("KeyW")
        page.wait_for_timeout(2000)
        page.keyboard.up("KeyW")
        page.keyboard.down("KeyL")
        page.wait_for_function(
            "() => window.sanaState.track.some(([i, x, z, yaw]) => yaw > 5)", timeout=30_000
        )
        page.keyboard.up("KeyL")
        page.wait_for_function(
            "() => window.sanaState.pose && window.sanaState.pose.yaw_deg > 5", timeout=30_000
        )
        after = _canvas_pixels(page)

        track = np.array(_state(page, "track"))  # [index, x, z, yaw, keys_seq] per frame received
        assert len(track) >= 48 and (np.diff(track[:, 0]) == 1).all()
        turning = np.nonzero(track[:, 3] > 0)[0][0]
        assert track[turning - 1, 2] > 0.3  # walked forward (+Z) first, straight ahead
        assert abs(track[:turning, 3]).max() == 0 and abs(track[:turning, 1]).max() < 1e-6
        assert track[-1, 3] > 5 and (np.diff(track[turning:, 3]) >= 0).all()  # then turned right (L, v1)
        assert track[turning:, 2].max() == pytest.approx(track[turning - 1, 2], abs=0.06)  # on the spot
        assert np.abs(after - before).mean() > 3  # the picture changed
        assert _state(page, "latencies.length") >= 1 and page.text_content("#latency").endswith("key → frame")
        assert page.text_content("#pose").startswith("x ")

        # A second browser while this one holds the device (paused, no key held): busy, its place in line.
        page.wait_for_function("() => window.sanaState.state === 'paused'", timeout=30_000)
        other = browser.new_page()
        other.goto(server.url + "/")
        other.wait_for_function("() => window.sanaState.state === 'idle'")
        other.select_option("#size", index=3)
        other.click("#start")
        other.wait_for_function("() => window.sanaState.state === 'queued'", timeout=10_000)
        assert other.text_content("#queue") == "#1 in line"
        assert "busy" in other.text_content("#overlay")
        other.close()  # leaves the line

        # A bad message: a visible error, the session goes on.
        page.evaluate('() => window.sanaSend(\'{"type": "jump"}\')')
        page.wait_for_function("() => document.querySelector('#error').textContent.includes('bad_message')")
        assert page.locator("#error").is_visible()

        page.click("#stop")
        page.wait_for_function("() => window.sanaState.state === 'ended'", timeout=30_000)
        href = page.get_attribute("#download", "href")
        assert href.startswith("/api/recording/") and href.endswith(".zip")
        with page.expect_download() as download:
            page.click("#download")
        assert download.value.suggested_filename.endswith(".zip")

        # An oversize upload (over 64 KiB, a valid PNG): the server's error shows; it keeps serving.
        noise = np.random.default_rng(0).integers(0, 255, (160, 200, 3), dtype=np.uint8)
        big = tmp_path / "big.png"
        Image.fromarray(noise).save(big)
        assert big.stat().st_size > 64 * 1024
        page.set_input_files("#image", str(big))
        page.click("#start")
        page.wait_for_function(
            "() => document.querySelector('#error').textContent.includes('upload_too_large')"
        )
        assert page.locator("#error").is_visible() and "MiB" in page.text_content("#error")
        page.set_input_files("#image", [])
        page.click("#start")
        page.wait_for_function("() => window.sanaState.state === 'paused'", timeout=30_000)
        assert _state(page, "frames") > 0
    finally:
        server.stop()
