"""The documentation's screenshots of a finished run: ``python scripts/screenshots.py RUN_DIR --out docs/img``.

* ``report.png``: the top of ``report/report.html`` (the dashboard);
* ``browser.png``: its answer browser, a citation clicked (its passage shown);
* ``tensorboard.png``: TensorBoard on the run's ``tb/`` folder (``--tb RUN_DIR`` for another run's), served on
  localhost for the shot.

Headless Debian chromium through selenium (``make setup-browser``), offline; PNGs reduced to a palette so they stay
small in the repository.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

TB_TAGS = "train/(loss|rewards/(margins|accuracies|chosen))"  # the DPO curves shown in the TensorBoard shot
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars")


def browser(width: int, height: int):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for flag in (*FLAGS, f"--window-size={width},{height}", f"--user-data-dir={tempfile.mkdtemp(prefix='shots-')}"):
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


def save_small(png: bytes, path: Path, width: int | None = None) -> None:
    """A screenshot as a palette PNG (optionally scaled to ``width``)."""
    import io

    from PIL import Image

    img = Image.open(io.BytesIO(png)).convert("RGB")
    if width and img.width > width:
        img = img.resize((width, round(img.height * width / img.width)), Image.LANCZOS)
    img.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    print(f"{path}: {img.width}x{img.height}, {path.stat().st_size / 1024:.0f} KiB")


def report_shots(page: Path, out: Path) -> None:
    from selenium.webdriver.common.by import By

    d = browser(1280, 1180)
    try:
        d.get(page.resolve().as_uri())
        save_small(d.get_screenshot_as_png(), out / "report.png", 1100)
        d.execute_script("document.getElementById('browser').scrollIntoView()")
        time.sleep(0.3)
        cites = [c for c in d.find_elements(By.CSS_SELECTOR, ".q button.cite") if c.is_displayed()]
        rel = [c for c in cites if "rel" in c.get_attribute("class").split()]
        (rel or cites)[min(1, len(rel or cites) - 1)].click()
        time.sleep(0.3)
        save_small(d.get_screenshot_as_png(), out / "browser.png", 1100)
    finally:
        d.quit()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tensorboard_shot(tb_dir: Path, out: Path) -> None:
    port = _free_port()
    exe = Path(sys.executable).parent / "tensorboard"
    server = subprocess.Popen([str(exe), "--logdir", str(tb_dir), "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/?darkMode=false#timeseries"
        for _ in range(120):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        else:
            raise RuntimeError("tensorboard did not start")
        d = browser(1280, 1000)
        try:
            d.get(url)
            time.sleep(8)  # the page and its run list load
            from selenium.webdriver.common.by import By
            from selenium.webdriver.common.keys import Keys

            for b in d.find_elements(By.CSS_SELECTOR, "button[aria-label='Close side pane']"):
                b.click()  # the settings pane: more room for the cards
            tags = d.find_element(By.CSS_SELECTOR, "input[placeholder*='Filter tags']")
            tags.send_keys(TB_TAGS, Keys.ESCAPE)
            from selenium.webdriver.common.action_chains import ActionChains

            runs = d.find_element(By.CSS_SELECTOR, "input[placeholder*='Filter runs']")
            ActionChains(d).move_to_element(runs).perform()  # the pointer off the charts: no hover box
            time.sleep(6)  # the scalar cards draw
            save_small(d.get_screenshot_as_png(), out / "tensorboard.png", 1100)
        finally:
            d.quit()
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("--out", type=Path, default=Path("docs/img"))
    p.add_argument("--tb", type=Path, help="the run whose training curves TensorBoard shows (default: run_dir)")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    report_shots(args.run_dir / "report" / "report.html", args.out)
    tb = (args.tb or args.run_dir) / "tb"
    if tb.is_dir():
        tensorboard_shot(tb, args.out)


if __name__ == "__main__":
    main()
