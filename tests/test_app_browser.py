"""The served app in a real browser: ``streamlit run app.py`` in a subprocess, driven by headless Chromium
(Debian's ``chromium`` and ``chromium-driver``) through selenium.

Screenshots go to the test's tmp dir; with ``DESIGNSPACE_SCREENSHOTS=DIR`` they are also copied to DIR as
``app-<page>.png`` (``DESIGNSPACE_SCREENSHOTS=docs pytest -m browser tests/test_app_browser.py`` refreshes the
documentation's screenshots).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
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
    studies and ``dev``, a study predicted on the iPhone 13 under a 1.1 ms budget (seconds: nothing is measured);
    yields its URL and results directory."""
    pytest.importorskip("streamlit")
    root = tmp_path_factory.mktemp("served") / "results"
    for name in ("mob", "tiny"):
        shutil.copytree(app_results / name, root / name)
    # the screenshots for docs/ show more of it (seconds either way)
    trials = "300" if os.environ.get("DESIGNSPACE_SCREENSHOTS") else "60"
    _extend(root, ["search", "mobile", "--device", "iphone13", "--budget", "1.1ms", "--trials", trials, "--study",
                   "dev", "--seed", "1", "--no-progress"])
    with _serve(root, tmp_path_factory.mktemp("served_log")) as url:
        yield url, root


@contextlib.contextmanager
def _serve(root: Path, logs: Path, *app_args: str) -> Iterator[str]:
    """``streamlit run app.py [-- APP_ARGS]`` over the results folder ``root`` on a free port; yields its URL."""
    port = _free_port()
    env = {**os.environ, "DESIGNSPACE_RESULTS": str(root)}
    log = (logs / "streamlit.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless",
                             "true", "--server.port", str(port), "--browser.gatherUsageStats", "false",
                             *(["--", *app_args] if app_args else [])],
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
        yield url
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


def _chart(driver: object) -> dict[str, object]:
    """The trade-off chart as plotly holds it in the page: its traces (name, error bars), shapes and axis titles."""
    script = """
        const el = document.querySelector('[data-testid="stPlotlyChart"] .js-plotly-plot');
        if (!el || !el._fullData) { return null; }
        const size = (a) => a ? (a.length !== undefined ? a.length : (a.bdata ? a.bdata.length : 0)) : 0;
        const bars = (e) => !!(e && e.visible !== false && size(e.array) > 0);
        // plotly's own view of the traces (_fullData): the data as drawn, typed arrays decoded
        return {traces: el._fullData.map(t => ({name: t.name, error_x: bars(t.error_x), error_y: bars(t.error_y),
                                                n: size(t.x)})),
                shapes: (el.layout.shapes || []).map(s => s.name || ''),
                x: ((el.layout.xaxis || {}).title || {}).text || '',
                y: ((el.layout.yaxis || {}).title || {}).text || ''};
    """
    deadline = time.monotonic() + 30
    while True:
        got = _stale_safe(lambda: driver.execute_script(script))  # type: ignore[attr-defined]
        if got or time.monotonic() > deadline:
            assert got, "the trade-off chart is not drawn"
            return dict(got)
        time.sleep(0.3)


def _title(driver: object, page: str, expected: str) -> None:
    """The page's heading and the browser tab's title are the page's own."""
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + 30
    while True:
        heads = _stale_safe(lambda: [e.text for e in driver.find_elements(By.TAG_NAME, "h1")])  # type: ignore
        if f"designspace: {expected}" in heads and driver.title == f"designspace: {expected}":  # type: ignore
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"page {page}: headings {heads}, tab title {driver.title!r}")  # type: ignore
        time.sleep(0.3)


def _open_tab(driver: object, tab: str) -> None:
    from selenium.webdriver.common.by import By

    def click() -> None:
        tabs = [t for t in driver.find_elements(By.CSS_SELECTOR, '[role="tab"]')  # type: ignore[attr-defined]
                if t.text.strip() == tab]
        assert tabs, f"no tab {tab!r}"
        tabs[0].click()

    _stale_safe(click)
    time.sleep(1.0)


def test_browser_study_trial_and_pages(served: tuple[str, Path], browser: object, tmp_path: Path) -> None:
    """A predicted-latency study: error bars on the latency axis, the budget line, infeasible trials drawn, a
    true latency-context tab, a title per page; then the measured study's axis. Its screenshots are docs/'s."""
    from selenium.webdriver.common.by import By

    from designspace.results import read_results

    url, root = served
    driver = browser
    driver.get(url)  # type: ignore[attr-defined]
    _wait(driver, "Study", "Pareto front")
    _title(driver, "Trade-offs", "Trade-offs")
    _select(driver, "Study", "dev")
    _wait(driver, "latency (ms) on iphone13, predicted", "Trial ")
    chart = _chart(driver)
    assert "latency (ms) on iphone13, predicted" in str(chart["x"])
    assert "size proxy for accuracy" in str(chart["y"])  # the default estimate says what it is
    traces = {str(t["name"]): t for t in chart["traces"]}  # type: ignore[attr-defined]
    bars = traces.get("latency interval (iphone13, predicted)")
    assert bars is not None and bars["error_x"], f"no error bars on the latency axis: {list(traces)}"
    assert "budget latency_ms" in chart["shapes"]  # type: ignore[operator]
    assert "Pareto front" in traces and "infeasible" in traces and traces["infeasible"]["n"]
    shots = [_shot(driver, tmp_path, "tradeoffs")]
    number = read_results(root / "dev").pareto()[-1]["number"]  # open the last trial of the front
    _select(driver, "Open a trial", f"trial {number}")
    body = _wait(driver, f"Trial {number}", "Stages", "Latency context", "stage 1")
    assert "parameters (M)" in body and "width" in body and "downsample" in body  # the per-stage table

    def scroll() -> None:
        trial = driver.find_elements(By.XPATH, f"//*[text()='Trial {number}']")  # type: ignore[attr-defined]
        driver.execute_script("arguments[0].scrollIntoView();", trial[0])  # type: ignore[attr-defined]

    _open_tab(driver, "Latency context")
    body = _wait(driver, "predicted by the device profile's cost model", "interval (ms)", "ms on iphone13, predicted")
    assert "not measured or predicted" not in body and "profile leave-one-out error (mean)" in body
    assert re.search(r"profile leave-one-out error \(mean\)\s+\d+\.\d%", body)  # a percentage, not a fraction
    _stale_safe(scroll)
    time.sleep(0.5)
    shots.append(_shot(driver, tmp_path, "trial"))
    for tab in ("Diagram", "Blocks"):
        _open_tab(driver, tab)
    assert driver.find_elements(By.CSS_SELECTOR, '[data-testid="stPlotlyChart"]')  # type: ignore[attr-defined]
    _page(driver, "Compare")
    _wait(driver, "Trials to compare", "Per part", "stage 1")
    _title(driver, "Compare", "Compare trials")
    shots.append(_shot(driver, tmp_path, "compare"))
    _page(driver, "Progress")
    _wait(driver, "hypervolume of the feasible front", "size proxy for accuracy")
    _title(driver, "Progress", "Search progress")
    shots.append(_shot(driver, tmp_path, "progress"))
    _page(driver, "Zoo")
    _wait(driver, "Published models", "Device profiles", "leave-one-out error (mean and max, in %)",
          "Predict on device", "90% interval")
    _title(driver, "Zoo", "Published models and device profiles")
    shots.append(_shot(driver, tmp_path, "zoo"))
    assert "Traceback" not in _body(driver)
    assert all(p.stat().st_size > 10_000 for p in shots)
    # a study measured here names its device and source the same way
    _page(driver, "Trade-offs")
    _wait(driver, "Study", "Pareto front")
    _select(driver, "Study", "tiny")
    _wait(driver, "latency (ms) on local, measured", "Trial ")
    assert "latency interval (local, measured)" in [t["name"] for t in _chart(driver)["traces"]]  # type: ignore


def test_browser_storages_are_the_operators_and_read_only(served: tuple[str, Path], browser: object,
                                                          tmp_path: Path) -> None:
    """No storage field unless the operator allows storages; then only their names, opened read-only."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    url, root = served
    driver = browser
    driver.get(url)  # type: ignore[attr-defined]
    body = _wait(driver, "Study", "Pareto front")
    assert "allowed storage" not in body and "Storage URL" not in body and "Read studies from" not in body
    study_db = root / "mob" / "study.db"
    files = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()}
    with _serve(root, tmp_path, "--storage", f"team=sqlite:///{study_db.resolve()}") as allowed:
        driver.get(allowed)  # type: ignore[attr-defined]
        _wait(driver, "Read studies from", "allowed storage")
        _page(driver, "allowed storage")  # the source radio, labelled like the pages' radio
        body = _wait(driver, "Give the study name", "Storage")
        page = str(driver.page_source)  # type: ignore[attr-defined]
        assert "team" in page and "sqlite" not in page and "study.db" not in page  # the name, never the URL
        inputs = [e for e in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stTextInput"]')]  # type: ignore
        assert [e.text.splitlines()[0] for e in inputs] == ["Study name"]  # no field takes a URL

        def type_name() -> None:
            box = driver.find_element(By.CSS_SELECTOR, '[data-testid="stTextInput"] input')  # type: ignore
            box.send_keys("mob", Keys.ENTER)

        _stale_safe(type_name)
        _wait(driver, "Pareto front", "trials")
        _shot(driver, tmp_path, "storage")
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()
            and not p.name.endswith(("-wal", "-shm"))} == {p: h for p, h in files.items()
                                                           if not p.name.endswith(("-wal", "-shm"))}
    assert "Traceback" not in _body(driver)


def test_browser_analysis_page(served: tuple[str, Path], browser: object, tmp_path: Path) -> None:
    """The Analysis page in the browser: a small sample of a shipped space on iphone13, three plots whose axis titles
    name the unit and the device."""
    from selenium.webdriver.common.by import By

    url, _ = served
    driver = browser
    driver.get(url)  # type: ignore[attr-defined]
    _wait(driver, "designspace: Trade-offs")
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
