"""The web inbox in a real browser (headless chromium through selenium): what a person
sees and clicks, and hostile mail that must show as text and neither run nor fetch."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kit.support import wait_until
from kit.web import ALT, BACKUP, BEACON, CRON, HOSTILE, HTML, MDADM, Recorder, Serve, beacon_mail, shot

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


def quiet_for(driver: Any, recorder: Recorder | None, seconds: float) -> None:
    """For ``seconds``: no connection to the recorder, no mark of a mail's script (an
    open alert fails execute_script); fails as soon as either comes."""
    assert recorder is not None
    before = recorder.connections
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert recorder.connections == before, "a connection to the mail's sender"
        assert driver.execute_script("return window.__pwned === undefined")
        time.sleep(0.05)


def test_hostile_mail_is_text(inbox: Serve, browser: Any, preconnect_seconds: float) -> None:
    browser.get(inbox.url + "/")
    assert HOSTILE in subjects(browser)
    no_side_effects(browser)
    browser.find_element(By.PARTIAL_LINK_TEXT, "<script>window.__pwned").click()
    wait_until(lambda: "/mail/" in browser.current_url, what="the hostile mail")
    quiet_for(browser, inbox.recorder, max(2.0, 10 * preconnect_seconds))
    no_side_effects(browser)
    assert browser.find_element(By.CSS_SELECTOR, "h1.subject").text == HOSTILE
    assert "<script>alert(7)</script>" in browser.find_element(By.ID, "body").text
    assert "<b onmouseover=alert(2)>Evil</b>" in browser.find_element(By.CSS_SELECTOR, ".headers").text
    assert not browser.find_elements(By.CSS_SELECTOR, "main script, main b, main img")
    assert inbox.recorder is not None and inbox.recorder.requests == []


@pytest.mark.parametrize("subject", [HTML, ALT], ids=["html-only", "alternative"])
def test_html_mail_runs_and_fetches_nothing(inbox: Serve, browser: Any, subject: str,
                                            preconnect_seconds: float) -> None:
    browser.get(f"{inbox.url}/mail/{inbox.ids[subject]}")
    if subject == ALT:
        assert "the plain text, see javascript:alert(9)" in browser.find_element(By.ID, "body").text
        browser.find_element(By.CSS_SELECTOR, "section.body details summary").click()
    frame = browser.find_element(By.CSS_SELECTOR, "iframe.html")
    assert frame.get_attribute("sandbox") == ""
    browser.switch_to.frame(frame)
    wait_until(lambda: [h.text for h in browser.find_elements(By.TAG_NAME, "h1")] == ["Hello from HTML"],
               what="the HTML in its frame")
    assert not browser.find_elements(By.TAG_NAME, "script") and not browser.find_elements(By.TAG_NAME, "iframe")
    browser.find_element(By.LINK_TEXT, "click me").click()  # no href left: nothing to follow
    quiet_for(browser, inbox.recorder, max(2.0, 10 * preconnect_seconds))
    browser.switch_to.default_content()
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


@pytest.fixture(scope="module")
def preconnect_seconds(browser: Any) -> Iterator[float]:
    """The control: how long this browser takes to open the connection a plain page's
    ``<link rel=preconnect>`` asks for (so that the window below is known to be long enough)."""
    target = Recorder().start()
    page = Recorder(page=f'<link rel="preconnect" href="{target.url}"><p>control</p>').start()
    try:
        started = time.monotonic()
        browser.get(page.url + "/page")
        wait_until(lambda: target.connections > 0, what="the control page's preconnect")
        yield time.monotonic() - started
    finally:
        page.stop()
        target.stop()


def test_read_receipt_mail_opens_no_connection(inbox: Serve, browser: Any, preconnect_seconds: float) -> None:
    """preconnect, dns-prefetch, prefetch, preload, refresh, base, iframe, frame, object,
    embed, a link and a form in an HTML mail: shown, clicked, and not one connection made
    to the sender's listener in ten times what the control's preconnect took (2 s at least)."""
    assert inbox.recorder is not None and inbox.send is not None
    inbox.send(beacon_mail(inbox.recorder.url))
    wait_until(lambda: BEACON.encode() in inbox.get("/api/mails?subject=" + BEACON.replace(" ", "+"))[2],
               what="the mail")
    import json

    mail_id = json.loads(inbox.get("/api/mails?subject=" + BEACON.replace(" ", "+"))[2])["mail_id"]
    before = inbox.recorder.connections
    browser.get(f"{inbox.url}/mail/{mail_id}")
    frame = browser.find_element(By.CSS_SELECTOR, "iframe.html")
    browser.switch_to.frame(frame)
    wait_until(lambda: [h.text for h in browser.find_elements(By.TAG_NAME, "h1")] == ["Read me"],
               what="the HTML in its frame")
    for text in ("the report", "relative"):
        links = browser.find_elements(By.LINK_TEXT, text)
        assert links, text
        links[0].click()
    assert inbox.recorder.connections == before, "the mail opened a connection to its sender"
    quiet_for(browser, inbox.recorder, max(2.0, 10 * preconnect_seconds))
    for tag in ("link", "meta", "base", "iframe", "frame", "object", "embed", "form", "input"):
        assert not browser.find_elements(By.TAG_NAME, tag), tag
    browser.switch_to.default_content()
    assert inbox.recorder.requests == []
    no_side_effects(browser)
    status, headers, body = inbox.get(f"/mail/{mail_id}/html")
    assert status == 200 and headers["X-DNS-Prefetch-Control"] == "off"
    assert "frame-src 'none'" in headers["Content-Security-Policy"]
    for word in (b"<link", b"<meta", b"<base", b"<iframe", b"<frame", b"<object", b"<embed", b"<form", b"href",
                 inbox.recorder.url.encode()):
        assert word not in body, word
