"""Open a page in real headless Chromium (Debian's ``chromium``) and report what a reader would see."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class Rendered:
    declared_plots: int
    plot_divs: int
    rendered_plots: int  # plot divs with an <svg class="main-svg"> that has a non-zero size
    console_errors: list[str] = field(default_factory=list)


def render(page_path: Path, timeout_ms: int = 60_000) -> Rendered:
    if CHROMIUM is None:
        raise RuntimeError("Debian's chromium is not installed: run scripts/ensure-chromium.sh (the README's test command does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
            "--disable-extensions", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
            page.goto(page_path.resolve().as_uri(), wait_until="load", timeout=timeout_ms)
            page.wait_for_load_state("networkidle", timeout=timeout_ms)
            counts = page.evaluate("""() => {
                const divs = [...document.querySelectorAll('.js-plotly-plot')];
                const drawn = divs.filter(d => { const s = d.querySelector('svg.main-svg');
                    return s && s.getBoundingClientRect().width > 0 && s.getBoundingClientRect().height > 0
                        && d.querySelectorAll('.trace, .bars, .scatterlayer path').length > 0; });
                return [Number(document.body.dataset.plots || 0), document.querySelectorAll('.plot').length, drawn.length];
            }""")
        finally:
            browser.close()
    return Rendered(*counts, console_errors=errors)
