"""The README's picture of ``sana-wm serve``: the page in headless Chromium after a short walk (W, then L).

Runs the bundled demo model on the CPU at its own size (192 x 352) with ``--steps`` per chunk, drives Debian's
``chromium`` with Playwright, and writes a palette PNG (small enough for the repository).

    python scripts/serve_screenshot.py --out docs/serve.png
"""

from __future__ import annotations

import argparse
import io
import shutil
import tempfile
from pathlib import Path

from PIL import Image

# What Chromium needs on these machines (root: no sandbox; no GPU; no background network, which is refused).
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/serve.png"))
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--colors", type=int, default=128, help="palette size of the PNG")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from sana_wm.inference.request import RuntimeSettings
    from sana_wm.inference.source import choose_model
    from sana_wm.serve.engine import load_engine
    from sana_wm.serve.server import ServeConfig, start_in_thread

    engine = load_engine(choose_model(), RuntimeSettings(device="cpu"))
    with tempfile.TemporaryDirectory() as workdir, sync_playwright() as playwright:
        server = start_in_thread(engine, ServeConfig(port=0), Path(workdir))
        browser = playwright.chromium.launch(
            executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS
        )
        try:
            page = browser.new_page(viewport={"width": 1120, "height": 600})
            page.goto(server.url + "/")
            page.wait_for_function("() => window.sanaState.state === 'idle'")
            page.fill("#steps", str(args.steps))
            page.click("#start")
            page.wait_for_function("() => window.sanaState.shown > 0", timeout=120_000)
            page.locator("#canvas").focus()
            page.keyboard.down("KeyW")
            page.wait_for_function("() => window.sanaState.track.some((t) => t[2] > 1)", timeout=120_000)
            page.keyboard.down("KeyL")
            page.wait_for_function(
                "() => window.sanaState.pose && window.sanaState.pose.yaw_deg > 10", timeout=120_000
            )
            page.wait_for_timeout(400)
            png = page.screenshot()
            page.keyboard.up("KeyL")
            page.keyboard.up("KeyW")
        finally:
            browser.close()
            server.stop()
    picture = (
        Image.open(io.BytesIO(png)).convert("RGB").quantize(args.colors, method=Image.Quantize.MEDIANCUT)
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    picture.save(args.out, optimize=True)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
