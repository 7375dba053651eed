"""The web chat page of `tqlm serve` in a real browser (Debian's chromium, headless, driven by selenium through
chromedriver): the page shows the model and KV mode, a typed message gets a streamed answer, the stop button
ends a long answer early, and a screenshot is saved to .cache/web-chat.png."""
import time

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from conftest import ROOT
from test_server import M, Served


@pytest.fixture(scope="module")
def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1000,700"):
        opts.add_argument(a)
    d = webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path="/usr/bin/chromedriver"))
    yield d
    d.quit()


def api_answer(server, question):
    """The same request through the openai client: the server's defaults (generation_config, seed 0) make it
    deterministic, so the page must show exactly this text."""
    return server.client().chat.completions.create(
        model=M, messages=[{"role": "user", "content": question}]).choices[0].message.content


def same_text(page, api):
    return " ".join(page.split()) == " ".join(api.split()) and page.strip()


def test_chat_in_a_browser(tqlm_bin, browser):
    s = Served(tqlm_bin, "--ctx", "2048")
    try:
        browser.get(s.url + "/")
        wait = WebDriverWait(browser, 120)
        wait.until(lambda d: "KV bf16" in d.find_element(By.ID, "info").text)
        assert "smollm2-135m-instruct" in browser.find_element(By.ID, "info").text
        box = browser.find_element(By.ID, "input")
        box.send_keys("What is the capital of France?")
        browser.find_element(By.ID, "send").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".assistant .answer") and
                   d.find_elements(By.CSS_SELECTOR, ".assistant .answer")[-1].text.strip())
        wait.until(lambda d: d.find_element(By.ID, "send").is_enabled())  # the stream ended
        answer = browser.find_elements(By.CSS_SELECTOR, ".assistant .answer")[-1].text
        assert same_text(answer, api_answer(s, "What is the capital of France?")), answer
        assert browser.find_elements(By.CSS_SELECTOR, ".user")[-1].text == "What is the capital of France?"
        # a second turn, stopped early: the stop button aborts the stream and the page is usable again
        box.send_keys("Write a very long story about the sea.")
        browser.find_element(By.ID, "send").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".assistant .answer")) == 2 and
                   d.find_elements(By.CSS_SELECTOR, ".assistant .answer")[-1].text.strip())
        browser.find_element(By.ID, "stop").click()
        wait.until(lambda d: d.find_element(By.ID, "send").is_enabled())
        shot = ROOT / ".cache" / "web-chat.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(shot))
        assert shot.stat().st_size > 1000
        deadline = time.time() + 30  # the aborted request was cancelled on the server: nothing keeps running
        while time.time() < deadline and s.metrics()["tqlm_sequences_running"] != 0:
            time.sleep(0.2)
        assert s.metrics()["tqlm_sequences_running"] == 0
    finally:
        s.stop()


def test_api_key_field(tqlm_bin, browser):
    """With --api-key the page shows a key field; a message without the key shows the server's 401 message,
    with the key it gets an answer."""
    s = Served(tqlm_bin, "--ctx", "1024", "--api-key", "page-secret")
    try:
        browser.get(s.url + "/")
        browser.execute_script("localStorage.clear()")
        browser.get(s.url + "/")
        wait = WebDriverWait(browser, 120)
        wait.until(lambda d: d.find_element(By.ID, "key").is_displayed())
        box = browser.find_element(By.ID, "input")
        box.send_keys("Hello")
        browser.find_element(By.ID, "send").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".assistant .error"))
        assert "API key" in browser.find_elements(By.CSS_SELECTOR, ".assistant .error")[-1].text
        browser.find_element(By.ID, "key").send_keys("page-secret")
        box.send_keys("What is the capital of France?")
        browser.find_element(By.ID, "send").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".assistant .answer")) == 2 and
                   d.find_elements(By.CSS_SELECTOR, ".assistant .answer")[-1].text.strip())
        wait.until(lambda d: d.find_element(By.ID, "send").is_enabled())
        answer = browser.find_elements(By.CSS_SELECTOR, ".assistant .answer")[-1].text
        # the page sent the whole conversation (the failed first turn included); the API gets the same
        history = [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": ""},
                   {"role": "user", "content": "What is the capital of France?"}]
        ref = s.client("page-secret").chat.completions.create(model=M, messages=history).choices[0].message.content
        assert same_text(answer, ref), (answer, ref)
    finally:
        s.stop()
