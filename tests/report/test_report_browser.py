"""The report in a real browser: headless Debian Chromium driven by Playwright for Python.

Playwright never downloads a browser here: it launches ``/usr/bin/chromium`` (Debian's
``chromium``; ``.ci/run`` installs it) through ``executable_path``, with WebGL2 on SwiftShader
and the background services that would try to reach the network switched off. Required when
``CI`` is set; elsewhere it skips, saying what is missing.

``VOLSEG_REPORT_HTML=runs/demo/report.html VOLSEG_REPORT_SCREENSHOT=docs/report.png`` runs the
same checks on the demo's report and saves the README's screenshot (``make screenshot``).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from volseg.report.page import write_report
from volseg.report.viewer import GET_NIIVUE, find_niivue

CHROMIUM = Path(os.environ.get("VOLSEG_CHROMIUM", "/usr/bin/chromium"))
FLAGS = [
    "--no-sandbox",
    "--enable-unsafe-swiftshader",
    "--use-angle=swiftshader",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LOCAL = ("file:", "data:", "blob:")  # nothing else may be requested


def _require_browser() -> None:
    missing = []
    if not CHROMIUM.is_file():
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package (pip install -e '.[dev]')")
    if find_niivue() is None:
        missing.append(f"NiiVue (npm ci, or {GET_NIIVUE})")
    if missing:
        message = "browser test needs " + "; ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(message + " (required in CI)")
        pytest.skip(message)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory, case_folders: tuple[Path, Path, Path]) -> Path:
    _require_browser()
    given = os.environ.get("VOLSEG_REPORT_HTML")
    if given:
        return Path(given).resolve()
    images, refs, preds = case_folders
    out = tmp_path_factory.mktemp("browser") / "report.html"
    return write_report(preds, out, ref=refs, images=images).path


class Session:
    """One page of the report with its console errors and every request it made."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []
        self.requests: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("request", lambda r: self.requests.append(r.url))

    def canvas(self) -> np.ndarray:
        """The viewer canvas as an RGB array, from a real screenshot."""
        from matplotlib.image import imread

        self.page.evaluate(
            "new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"
        )
        png = self.page.locator("#viewer").screenshot()
        return (imread(io.BytesIO(png), format="png")[..., :3] * 255).astype(np.int16)


@pytest.fixture(scope="module")
def session(report: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")  # fresh --user-data-dir
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=FLAGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            # any request that would leave the machine is recorded and refused
            context.route(
                "**/*",
                lambda route: (
                    route.continue_() if route.request.url.startswith(LOCAL) else route.abort()
                ),
            )
            current = Session(context.new_page())
            current.page.goto(report.as_uri())
            current.page.wait_for_function(
                "['ready', 'failed', 'absent'].includes(document.body.dataset.viewer)",
                timeout=45_000,
            )
            yield current
        finally:
            context.close()


def _red(rgb: np.ndarray) -> int:
    """Pixels where red clearly dominates: the prediction overlay."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return int(np.count_nonzero((r > 40) & (r > g + 25) & (r > b + 25)))


def test_viewer_shows_the_scan_with_no_error_and_no_network(session: Session) -> None:
    page = session.page
    assert page.evaluate("document.body.dataset.viewer") == "ready"
    assert page.evaluate("window.volseg.roles()") == ["image", "prediction", "reference"]
    rgb = session.canvas()
    grey = (np.abs(rgb[..., 0] - rgb[..., 1]) < 12) & (np.abs(rgb[..., 1] - rgb[..., 2]) < 12)
    scan = np.count_nonzero(grey & (rgb.max(axis=-1) > 15))  # grey, not black: the scan
    assert scan > 0.03 * grey.size, f"scan covers {scan} of {grey.size} canvas pixels"
    assert rgb.std() > 10.0
    shot = os.environ.get("VOLSEG_REPORT_SCREENSHOT")
    if shot:  # the README's pictures: the top of the page, and the viewer
        path = Path(shot)
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=path.with_name(path.stem + "_top.png"))
        page.evaluate("document.getElementById('viewer-section').scrollIntoView()")
        page.screenshot(path=path)
    assert not session.errors, session.errors
    assert session.requests and all(url.startswith(LOCAL) for url in session.requests), [
        u for u in session.requests if not u.startswith(LOCAL)
    ]


def _column(page: Any, index: int) -> list[str]:
    return page.eval_on_selector_all(
        "#cases tbody tr", f"rows => rows.map(r => r.children[{index}].textContent)"
    )


def test_header_click_reorders_the_table(session: Session) -> None:
    page = session.page
    headers = page.eval_on_selector_all("#cases th", "hs => hs.map(h => h.textContent)")
    before = _column(page, 0)
    assert len(set(before)) > 1
    page.click("#cases th >> nth=0")  # case, ascending
    ascending = _column(page, 0)
    page.click("#cases th >> nth=0")  # case, descending
    descending = _column(page, 0)
    assert ascending == sorted(before) and descending == sorted(before, reverse=True)
    assert ascending != descending
    index = headers.index("pred_ml")
    page.click(f"#cases th >> nth={index}")
    volumes = [float(v) for v in _column(page, index)]
    assert volumes == sorted(volumes)
    page.click(f"#cases th >> nth={index}")
    assert [float(v) for v in _column(page, index)] == sorted(volumes, reverse=True)
    assert sorted(_column(page, 0)) == sorted(before)  # same rows, new order
    assert not session.errors, session.errors


def test_label_toggle_hides_the_prediction(session: Session) -> None:
    page = session.page
    shown = _red(session.canvas())
    assert shown > 50, "no red prediction pixels to begin with"
    page.uncheck("#show-prediction")
    assert page.evaluate("window.volseg.nv.volumes[1].opacity") == 0
    hidden = _red(session.canvas())
    page.check("#show-prediction")
    assert page.evaluate("window.volseg.nv.volumes[1].opacity") > 0
    again = _red(session.canvas())
    assert hidden < 0.2 * shown and again > 0.8 * shown, (shown, hidden, again)
    assert not session.errors, session.errors
