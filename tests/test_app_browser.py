"""The served app in a real browser: ``streamlit run app.py`` in a subprocess, driven by headless Chromium
(Debian's ``chromium`` and ``chromium-driver``) through selenium.

Screenshots go to the test's tmp dir; with ``DESIGNSPACE_SCREENSHOTS=DIR`` they are also copied to DIR as
``app-<page>.png`` (``DESIGNSPACE_SCREENSHOTS=docs pytest -m browser tests/test_app_browser.py`` refreshes the
documentation's screenshots).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

pytestmark = pytest.mark.browser
T = TypeVar("T")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _extend(root: Path, argv: list[str]) -> None:
    """Resumes a copied study to more trials (a real search, in a subprocess with the copy as results)."""
    env = {**os.environ, "DESIGNSPACE_RESULTS": str(root)}
    subprocess.run([sys.executable, "-m", "designspace", *argv], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def served(app_results: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The app served by ``streamlit run app.py`` on a free port, over a copy of the ``mob`` and ``tiny``
    studies; yields its URL and results directory."""
    pytest.importorskip("streamlit")
    root = tmp_path_factory.mktemp("served") / "results"
    for name in ("mob", "tiny"):
        shutil.copytree(app_results / name, root / name)
    if os.environ.get("DESIGNSPACE_SCREENSHOTS"):  # screenshots for docs/: a study with more to look at
        _extend(root, ["search", "tiny", "--trials", "40", "--seed", "0", "--no-progress"])
        _extend(root, ["search", "mobile", "--budget", "5M", "--budget", "0.6G", "--objective", "log10_macs",
                       "--objective", "params", "--trials", "150", "--study", "mob", "--seed", "1", "--no-progress"])
    port = _free_port()
    env = {**os.environ, "DESIGNSPACE_RESULTS": str(root)}
    log = (tmp_path_factory.mktemp("served_log") / "streamlit.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless",
                             "true", "--server.port", str(port), "--browser.gatherUsageStats", "false"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"streamlit did not start (exit {proc.poll()}); see {log.name}")
            time.sleep(0.3)
        yield url, root
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Headless Chromium through selenium and the system chromedriver (skips without them)."""
    if not (Path(CHROMIUM).exists() and Path(DRIVER).exists()):
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install selenium)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1600,2000", "--hide-scrollbars"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _stale_safe(action: Callable[[], T], tries: int = 20) -> T:
    """Runs ``action`` again while Streamlit redraws under it: an element found a moment ago can be replaced
    before its text is read or it is clicked (selenium's ``StaleElementReferenceException``)."""
    from selenium.common.exceptions import StaleElementReferenceException

    for _ in range(tries - 1):
        try:
            return action()
        except StaleElementReferenceException:
            time.sleep(0.3)
    return action()


def _body(driver: object) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.TAG_NAME, "body").text)  # type: ignore[attr-defined]


def _wait(driver: object, *texts: str, timeout: float = 60.0) -> str:
    """Waits until the page shows every text and Streamlit is no longer running the script; returns the text."""
    from selenium.webdriver.common.by import By

    def busy() -> bool:
        running = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stStatusWidget"]')  # type: ignore[attr-defined]
        return any("Running" in e.text for e in running)

    deadline = time.monotonic() + timeout
    while True:
        body = _stale_safe(lambda: _body(driver))
        if all(t in body for t in texts) and not _stale_safe(busy):
            time.sleep(0.8)  # let plotly and graphviz finish drawing
            return body
        if time.monotonic() > deadline:
            missing = [t for t in texts if t not in body]
            raise AssertionError(f"the page never showed {missing}; it shows:\n{body[:3000]}")
        time.sleep(0.3)


def _select(driver: object, label: str, option: str) -> None:
    """Picks ``option`` in the selectbox labelled ``label``."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    def pick() -> None:
        for box in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stSelectbox"]'):  # type: ignore[attr-defined]
            if box.text.splitlines()[0].strip() == label:
                box.find_element(By.CSS_SELECTOR, "input").click()
                box.find_element(By.CSS_SELECTOR, "input").send_keys(option)
                time.sleep(0.3)
                box.find_element(By.CSS_SELECTOR, "input").send_keys(Keys.ENTER)
                return
        raise AssertionError(f"no selectbox labelled {label!r}")

    _stale_safe(pick)


def _page(driver: object, name: str) -> None:
    from selenium.webdriver.common.by import By

    def click() -> None:
        for el in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stSidebar"] label'):  # type: ignore[attr-defined]
            if el.text.strip() == name:
                el.click()
                return
        raise AssertionError(f"no page {name!r} in the sidebar")

    _stale_safe(click)


def _shot(driver: object, folder: Path, name: str) -> Path:
    path = folder / f"app-{name}.png"
    driver.save_screenshot(str(path))  # type: ignore[attr-defined]
    target = os.environ.get("DESIGNSPACE_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / path.name)
    return path


def test_browser_study_trial_and_pages(served: tuple[str, Path], browser: object, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    from designspace.results import read_results

    url, root = served
    driver = browser
    driver.get(url)  # type: ignore[attr-defined]
    _wait(driver, "designspace: trade-offs", "Study", "Pareto front")
    _select(driver, "Study", "tiny")
    _wait(driver, "latency (ms) on local", "Trial ")
    def legend() -> str:
        charts = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stPlotlyChart"] .js-plotly-plot')  # type: ignore
        assert charts, "the trade-off chart is not drawn"
        return str(charts[0].text)

    assert "Pareto front" in _stale_safe(legend)  # the chart's legend
    shots = [_shot(driver, tmp_path, "tradeoffs")]
    number = read_results(root / "tiny").pareto()[-1]["number"]  # open the last trial of the front
    _select(driver, "Open a trial", f"trial {number}")
    body = _wait(driver, f"Trial {number}", "Stages", "Measurement context", "stage 1")
    assert "params_m" in body and "width" in body and "downsample" in body  # the per-stage table
    def scroll() -> None:
        trial = driver.find_elements(By.XPATH, f"//*[text()='Trial {number}']")  # type: ignore[attr-defined]
        driver.execute_script("arguments[0].scrollIntoView();", trial[0])  # type: ignore[attr-defined]

    _stale_safe(scroll)
    time.sleep(0.5)
    shots.append(_shot(driver, tmp_path, "trial"))
    for tab in ("Diagram", "Blocks"):
        def open_tab(tab: str = tab) -> None:
            tabs = [t for t in driver.find_elements(By.CSS_SELECTOR, '[role="tab"]')  # type: ignore[attr-defined]
                    if t.text.strip() == tab]
            assert tabs, f"no tab {tab!r}"
            tabs[0].click()

        _stale_safe(open_tab)
        time.sleep(1.0)
    assert driver.find_elements(By.CSS_SELECTOR, '[data-testid="stPlotlyChart"]')  # type: ignore[attr-defined]
    _page(driver, "Compare")
    _wait(driver, "Trials to compare", "Per part", "stage 1")
    shots.append(_shot(driver, tmp_path, "compare"))
    _page(driver, "Progress")
    _wait(driver, "hypervolume of the feasible front")
    shots.append(_shot(driver, tmp_path, "progress"))
    _page(driver, "Zoo")
    _wait(driver, "Published models", "Device profiles")
    shots.append(_shot(driver, tmp_path, "zoo"))
    assert "Traceback" not in _body(driver)
    assert all(p.stat().st_size > 10_000 for p in shots)


def test_browser_analysis_page(served: tuple[str, Path], browser: object, tmp_path: Path) -> None:
    """The Analysis page in the browser: a small sample of a shipped space on iphone13, three plots whose axis titles
    name the unit and the device."""
    from selenium.webdriver.common.by import By

    url, _ = served
    driver = browser
    driver.get(url)  # type: ignore[attr-defined]
    _wait(driver, "designspace: trade-offs")
    _page(driver, "Analysis")
    _wait(driver, "Analysis: what a space is like on a device", "Samples")
    _select(driver, "Space", "tiny")
    time.sleep(1.0)

    def press() -> None:
        buttons = [b for b in driver.find_elements(By.TAG_NAME, "button")  # type: ignore[attr-defined]
                   if b.text.strip() == "Analyze"]
        assert buttons, "no Analyze button"
        buttons[0].click()

    _stale_safe(press)
    body = _wait(driver, "Which block type in which stage is fastest per MAC", "Importance for", "Options of",
                 timeout=240)
    assert "spaces/tiny.yaml" in body and "Traceback" not in body

    def axes() -> list[str]:
        charts = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stPlotlyChart"] .js-plotly-plot')  # type: ignore
        return [str(t.text) for c in charts for t in c.find_elements(By.CSS_SELECTOR, ".g-xtitle, .g-ytitle")]

    titles = _stale_safe(axes)
    assert len([t for t in titles if "iphone13" in t]) >= 3, titles  # one titled axis per plot names the device
    assert any("ms/GMAC" in t for t in titles) and any("EDF" in t for t in titles), titles
    assert _shot(driver, tmp_path, "analysis").stat().st_size > 10_000
