"""The web inbox in a real browser (headless chromium through selenium): what a person
sees and clicks, and hostile mail that must show as text and neither run nor fetch."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from conftest import Serve, settle, shot
from support import wait_until
from webkit import ALT, BACKUP, CRON, HOSTILE, HTML, MDADM

pytest.importorskip("selenium")
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By

DOCS = Path(__file__).parents[2] / "docs"


def subjects(driver: Any) -> list[str]:
    return [td.text for td in driver.find_elements(By.CSS_SELECTOR, "#mails tbody td.subject a")]


def no_side_effects(driver: Any) -> None:
    """No alert is open and no script of a mail set its mark on the page."""
    try:
        alert = driver.switch_to.alert
        text = alert.text
        alert.dismiss()
        pytest.fail(f"a mail's script ran: alert({text})")
    except NoAlertPresentException:
        pass
    assert driver.execute_script("return window.__pwned === undefined")


def test_list_newest_first(inbox: Serve, browser: Any) -> None:
    browser.get(inbox.url + "/")
    shown = subjects(browser)
    assert shown[0] == ALT and shown[-1] == CRON  # sent first, shown last
    header = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#mails thead th")]
    assert header == ["Time", "Host", "User", "Caller", "Unit", "From", "To", "Size", "Subject"]
    assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    path = shot(browser, "list")
    if os.environ.get("JOURNAL_MAIL_DOCS_SHOT") == "1":  # README's picture, made anew on demand only
        shutil.copyfile(path, DOCS / "web-inbox.png")
    no_side_effects(browser)


def test_phone_width(inbox: Serve, browser: Any) -> None:
    browser.set_window_size(390, 844)
    try:
        browser.get(inbox.url + "/")
        assert subjects(browser)[0] == ALT
        assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
        shot(browser, "list-phone")
    finally:
        browser.set_window_size(1400, 1000)


def test_search_box(inbox: Serve, browser: Any) -> None:
    browser.get(inbox.url + "/")
    box = browser.find_element(By.NAME, "q")
    box.send_keys("degradedarray event had")
    box.submit()
    wait_until(lambda: "q=" in browser.current_url, what="the search page")
    assert subjects(browser) == [MDADM]


def test_filter_links(inbox: Serve, browser: Any) -> None:
    browser.get(inbox.url + "/?to=ops@example.org")
    assert set(subjects(browser)) == {MDADM, BACKUP}
    chip = browser.find_element(By.CSS_SELECTOR, ".filters .chip")
    assert "to: ops@example.org" in chip.text
    # a host link in a row narrows to that host (all test mail comes from this machine)
    browser.find_element(By.CSS_SELECTOR, "#mails tbody tr td:nth-child(2) a").click()
    wait_until(lambda: "host=" in browser.current_url, what="the host filter")
    assert set(subjects(browser)) == {MDADM, BACKUP}
    browser.get(inbox.url + "/?host=no-such-host")
    assert subjects(browser) == []
    assert "No mail matches" in browser.find_element(By.ID, "empty").text


def test_one_mail(inbox: Serve, browser: Any) -> None:
    browser.get(inbox.url + "/")
    browser.find_element(By.LINK_TEXT, BACKUP).click()
    wait_until(lambda: "/mail/" in browser.current_url, what="the mail page")
    facts = browser.find_element(By.CSS_SELECTOR, ".facts").text
    assert f"Mail-Id\n{inbox.ids[BACKUP]}" in facts and "Host" in facts and "User" in facts and "Caller" in facts
    assert f"journal-mail show {inbox.ids[BACKUP]}" in facts
    assert f"journalctl MAIL_ID={inbox.ids[BACKUP]}" in facts
    assert "All 12 volumes saved." in browser.find_element(By.ID, "body").text
    assert "backup-log.gz, application/gzip" in browser.find_element(By.CSS_SELECTOR, ".attachments").text
    assert browser.find_element(By.ID, "raw").get_attribute("href").endswith(f"/mail/{inbox.ids[BACKUP]}/raw")
    shot(browser, "mail")


def test_stats(inbox: Serve, browser: Any) -> None:
    browser.get(inbox.url + "/stats")
    svg = browser.find_element(By.CSS_SELECTOR, "svg.chart")
    assert svg.find_elements(By.TAG_NAME, "rect")
    assert "8 mail(s)" in browser.find_element(By.TAG_NAME, "main").text
    for by in ("host", "caller", "unit", "user"):
        assert browser.find_element(By.ID, f"by-{by}").find_elements(By.CSS_SELECTOR, "tbody tr")
    shot(browser, "stats")


def test_hostile_mail_is_text(inbox: Serve, browser: Any) -> None:
    browser.get(inbox.url + "/")
    assert HOSTILE in subjects(browser)
    no_side_effects(browser)
    browser.find_element(By.PARTIAL_LINK_TEXT, "<script>window.__pwned").click()
    wait_until(lambda: "/mail/" in browser.current_url, what="the hostile mail")
    settle()
    no_side_effects(browser)
    assert browser.find_element(By.CSS_SELECTOR, "h1.subject").text == HOSTILE
    assert "<script>alert(7)</script>" in browser.find_element(By.ID, "body").text
    assert "<b onmouseover=alert(2)>Evil</b>" in browser.find_element(By.CSS_SELECTOR, ".headers").text
    assert not browser.find_elements(By.CSS_SELECTOR, "main script, main b, main img")
    assert inbox.recorder is not None and inbox.recorder.requests == []


@pytest.mark.parametrize("subject", [HTML, ALT], ids=["html-only", "alternative"])
def test_html_mail_runs_and_fetches_nothing(inbox: Serve, browser: Any, subject: str) -> None:
    browser.get(f"{inbox.url}/mail/{inbox.ids[subject]}")
    if subject == ALT:
        assert "the plain text, see javascript:alert(9)" in browser.find_element(By.ID, "body").text
        browser.find_element(By.CSS_SELECTOR, "section.body details summary").click()
    frame = browser.find_element(By.CSS_SELECTOR, "iframe.html")
    assert frame.get_attribute("sandbox") == ""
    browser.switch_to.frame(frame)
    wait_until(lambda: browser.find_elements(By.ID, "hello"), what="the HTML in its frame")
    assert browser.find_element(By.ID, "hello").text == "Hello from HTML"
    browser.find_element(By.ID, "jslink").click()  # javascript: is inert in a sandbox without scripts
    settle()
    browser.switch_to.default_content()
    settle(0.5)
    no_side_effects(browser)
    assert inbox.recorder is not None and inbox.recorder.requests == []
    if subject == HTML:
        shot(browser, "html-mail")


def test_new_mail_arrives_without_reload(inbox: Serve, browser: Any) -> None:
    browser.get(inbox.url + "/")
    browser.execute_script("window.__same_page = 'yes'")
    wait_until(lambda: browser.find_element(By.ID, "live").text == "live", what="the events stream")
    subject = "arrived while the page was open <i>not italic</i>"
    assert inbox.send is not None
    inbox.send(f"From: late@web9\nTo: root\nSubject: {subject}\n\nnew\n".encode())
    wait_until(lambda: subjects(browser)[:1] == [subject], timeout=30, what="the new mail on the open page")
    assert browser.execute_script("return window.__same_page") == "yes"  # no reload
    row = browser.find_element(By.CSS_SELECTOR, "#mails tbody tr.new")
    assert not row.find_elements(By.TAG_NAME, "i")
    no_side_effects(browser)
