"""End to end in headless Chromium: predict, edit two times in the grid, add to the basket, download the xlsx.

The test starts ``streamlit run app.py`` on a free loopback port with a 600-item
sample in ``tmp_path`` (the app generates it and trains the first model) and
drives Debian's ``/usr/bin/chromium`` through Playwright; no browser is
downloaded. Without Chromium or Playwright the test is skipped, except under
CI=true, where .ci/run installs Chromium and the test fails instead.

Set ROUTING_SCREENSHOT_DIR to a folder to save ``predict.png`` and ``export.png``
there (the README screenshots come from ``docs/screenshots``).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from tests.app_env import sample_app_env

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
IN_CI = os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")
START_TIMEOUT_S = 240  # server start, sample generation and first training on a shared 2-core machine
STEP_TIMEOUT_MS = 120_000

# Grid columns in the accessibility table of the data editor: column 0 is the row marker.
SETUP_TIME_COLUMN = 8
RUN_TIME_COLUMN = 9
ROW_HEIGHT_PX = 35  # Streamlit's default data editor row and header height


def _skip_or_fail(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: .ci/run installs Chromium, so this is a failure)")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_healthy(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"streamlit exited with {process.returncode}: {log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=5) as response:
                if response.read().strip() == b"ok":
                    return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"streamlit did not answer within {START_TIMEOUT_S} s: {log.read_text(errors='replace')[-3000:]}")


@pytest.fixture
def sync_playwright():
    """Return Playwright's ``sync_playwright``, after checking that Debian's Chromium is there."""
    if shutil.which(CHROMIUM) is None:
        _skip_or_fail(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        _skip_or_fail(f"playwright cannot be imported: {exc}")
    return sync_playwright


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """Start the app on a free port with data and models in ``tmp_path``; yield its URL and log file."""
    port = _free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("ROUTING_")}
    env.update(sample_app_env(tmp_path))
    log = tmp_path / "streamlit.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"),
             "--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1",
             "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process, log)
        yield url, log
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def _wait_idle(page) -> None:
    """Wait until Streamlit has finished the current run and drawn every element."""
    page.wait_for_timeout(500)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " && !document.querySelector('[data-testid=\"stSkeleton\"]')",
        timeout=STEP_TIMEOUT_MS,
    )
    page.wait_for_timeout(500)


def _edit_cell(page, grid, row: int, column: int, text: str) -> None:
    """Type ``text`` into a data editor cell: select the row's first cell, move right, open the editor, fill, commit.

    The grid is a canvas, so the cell is reached with the keyboard from a click
    on the first data column; Enter opens the cell editor in the overlay portal.
    """
    box = grid.locator("canvas").first.bounding_box()
    assert box is not None, "the data editor canvas is not visible"
    page.mouse.click(box["x"] + 60, box["y"] + ROW_HEIGHT_PX * (row + 1) + ROW_HEIGHT_PX / 2)
    page.wait_for_timeout(300)
    for _ in range(column - 1):
        page.keyboard.press("ArrowRight")
    page.keyboard.press("Enter")
    editor = page.locator("#portal input, #portal textarea").first
    editor.wait_for(timeout=STEP_TIMEOUT_MS)
    editor.fill(text)
    page.keyboard.press("Enter")
    _wait_idle(page)


def _cell_text(grid, row: int, column: int) -> str:
    return grid.locator(f"#glide-cell-{column}-{row}").inner_text()


def _screenshot(page, name: str) -> None:
    """Save the whole main area as ``name`` in ROUTING_SCREENSHOT_DIR, if that is set."""
    folder = os.environ.get("ROUTING_SCREENSHOT_DIR")
    if not folder:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": 1400, "height": min(max(int(height), 900), 4000)})
    _wait_idle(page)
    page.screenshot(path=str(Path(folder) / name))
    page.set_viewport_size({"width": 1400, "height": 1000})
    _wait_idle(page)


def test_predict_edit_basket_download(sync_playwright, server: tuple[str, Path], tmp_path: Path) -> None:
    url, log = server

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True, locale="ko-KR")
            page.set_default_timeout(STEP_TIMEOUT_MS)
            page.goto(url, timeout=STEP_TIMEOUT_MS)

            # The app trains its first model before it shows the prediction page.
            predict = page.get_by_role("button", name="라우팅 예측")
            failed = page.get_by_text("첫 모델을 학습하지 못했습니다")
            predict.or_(failed).first.wait_for(timeout=START_TIMEOUT_S * 1000)
            if failed.count():
                pytest.fail(f"the app could not train its first model: {log.read_text(errors='replace')[-3000:]}")

            # Predict for the first listed item.
            predict.click()
            page.get_by_role("heading", name="후보 편집").first.wait_for()
            _wait_idle(page)
            item_cd = page.get_by_role("textbox", name="품목코드 (ERP에 등록할 코드)").first.input_value()

            # Two edits in a row in the grid of the first candidate; both must stay.
            grid = page.locator('[class*="st-key-editor-grid-"]').filter(visible=True).first
            grid.scroll_into_view_if_needed()
            _edit_cell(page, grid, 0, SETUP_TIME_COLUMN, "12.5")
            _edit_cell(page, grid, 1, RUN_TIME_COLUMN, "3.25")
            assert _cell_text(grid, 0, SETUP_TIME_COLUMN) == "12.5"
            assert _cell_text(grid, 1, RUN_TIME_COLUMN) == "3.25"
            page.get_by_text("검사 통과").first.wait_for()
            page.keyboard.press("Escape")  # clears the cell selection before the screenshot
            _screenshot(page, "predict.png")

            # Add to the basket, then open the export page.
            page.locator('[class*="st-key-editor-add-"]').filter(visible=True).first.get_by_role("button").click()
            page.get_by_text(f"{item_cd} 라우팅을 장바구니에 담았습니다").wait_for()
            page.get_by_role("link", name="ERP 내보내기", exact=True).click()
            page.get_by_text("검증 통과: 라우팅 1개").wait_for()
            _wait_idle(page)
            _screenshot(page, "export.png")

            with page.expect_download(timeout=STEP_TIMEOUT_MS) as download_info:
                page.get_by_role("button", name="Excel (xlsx) 내려받기").click()
            download = download_info.value
            assert download.suggested_filename == f"routing_export_{date.today():%Y%m%d}.xlsx"
            path = tmp_path / "download.xlsx"
            download.save_as(path)
            # The download does not rerun the page: the preview and its message stay.
            assert page.get_by_text("검증 통과: 라우팅 1개").is_visible()

            # Back on the prediction page the grid still shows both edits.
            page.get_by_role("link", name="예측", exact=True).click()
            page.get_by_role("heading", name="후보 편집").first.wait_for()
            _wait_idle(page)
            grid = page.locator('[class*="st-key-editor-grid-"]').filter(visible=True).first
            assert _cell_text(grid, 0, SETUP_TIME_COLUMN) == "12.5"
            assert _cell_text(grid, 1, RUN_TIME_COLUMN) == "3.25"
        finally:
            browser.close()

    rows = pl.read_excel(path)
    assert rows.columns[:4] == ["ITEM_CD", "ROUT_NO", "PROC_SEQ", "JOB_CD"]
    assert rows.height >= 2
    assert rows["ITEM_CD"].unique().to_list() == [item_cd]
    assert rows["ROUT_NO"].unique().to_list() == ["01"]
    assert rows["PROC_SEQ"].to_list() == sorted(rows["PROC_SEQ"].to_list())
    assert rows["SETUP_TIME"][0] == pytest.approx(12.5)
    assert rows["RUN_TIME"][1] == pytest.approx(3.25)
    assert rows["TIME_UNIT"].unique().to_list() == ["M"]
    assert str(rows["VALID_TO_DT"][0])[:10] == "2999-12-31"
    assert "Traceback" not in log.read_text(errors="replace")
