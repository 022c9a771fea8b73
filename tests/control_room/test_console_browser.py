"""The console in headless Chromium (Debian's, through its chromedriver), on a live control room:
a test device publishes through the real Mosquitto, the alert appears on the open queue without a
reload, an adjudicator opens it, sees the probe crop beside the reference image, decides, and the
decision is in the store, the audit log and back at the device (signed, in its own audit log); a viewer cannot decide; a forged cookie and a missing
CSRF token are refused. Set EDGE_AGENT_SCREENSHOTS=DIR to keep a screenshot of each main view."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from browser import PASSWORD, browser_missing, chromium, close_chromium, start_live_room
from edge_agent.events.crop import crop_face_jpeg
from edge_agent.vision.image_io import read_image
from skips import missing

pytestmark = pytest.mark.broker
REQUIRE_BROWSER_ENV = "EDGE_AGENT_REQUIRE_BROWSER"


def wait(condition, what: str, timeout_s: float = 15.0):
    """Poll ``condition`` until it is truthy. An element not there yet (the page still loading
    after a redirect) or replaced meanwhile counts as not yet, not as a failure."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            value = condition()
        except (NoSuchElementException, StaleElementReferenceException) as exc:
            value, last = None, exc
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}" + (f" (last: {type(last).__name__})" if last else ""))


@pytest.fixture
def browser():
    reason = browser_missing()
    if reason:
        missing(reason, REQUIRE_BROWSER_ENV)
    driver = chromium()
    yield driver
    close_chromium(driver)


@pytest.fixture
def room(mosquitto, messaging_env, tmp_path, fixtures_dir):
    faces = fixtures_dir / "faces"
    live = start_live_room(tmp_path, mosquitto, messaging_env, reference_images=[(faces / "obama_1.jpg").read_bytes()])
    yield live
    live.close()


def shoot(driver, name: str) -> None:
    folder = os.environ.get("EDGE_AGENT_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / f"{name}.png"))


def log_in(driver, room, username: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(room.url + "/login")
    driver.find_element(By.ID, "username").send_keys(username)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.ID, "login").click()
    wait(lambda: driver.current_url.endswith("/queue"), f"{username}'s queue")


def image_loaded(driver, element) -> bool:
    return bool(driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", element))


def probe_crop(core, path: Path) -> bytes:
    """The crop a device would send: the best detected face, cropped as the agent crops it."""
    image = read_image(path)
    face = max(core.faces(image), key=lambda f: f.detection.score)
    return crop_face_jpeg(image, face.detection.box)


def test_an_adjudicator_receives_reviews_and_decides_a_live_alert(browser, room, fixtures_dir, core):
    from selenium.webdriver.common.by import By

    driver = browser
    driver.get(room.url + "/login")
    shoot(driver, "login")
    log_in(driver, room, "adam")
    wait(lambda: driver.find_element(By.ID, "live").text == "live", "the live queue stream")
    assert driver.find_elements(By.CSS_SELECTOR, "#queue-rows tr") == []

    jpeg = probe_crop(core, fixtures_dir / "faces" / "obama_2.jpg")
    event_id = room.raise_alert(jpeg)
    row = wait(lambda: driver.find_elements(By.CSS_SELECTOR, f'#queue-rows tr[data-event="{event_id}"]'), "the alert on the open queue")[0]
    cells = [td.text for td in row.find_elements(By.TAG_NAME, "td")]
    assert cells[0] == "cam-01" and cells[1] == "DEP-CONSOLE-1" and cells[3] == "0.810" and cells[4] == "wanted_by_court"
    assert "subj-obama" not in driver.page_source  # the queue does not name the subject
    first = row.find_element(By.CLASS_NAME, "age").text
    wait(lambda: row.find_element(By.CLASS_NAME, "age").text != first, "the time-to-adjudicate counter to tick", 5)
    shoot(driver, "queue")

    row.find_element(By.LINK_TEXT, "Review").click()
    wait(lambda: f"/alerts/{event_id}" in driver.current_url, "the review page")
    probe = driver.find_element(By.ID, "probe")
    references = driver.find_elements(By.CSS_SELECTOR, "img.reference")
    assert len(references) == 1
    wait(lambda: image_loaded(driver, probe) and image_loaded(driver, references[0]), "both images")
    assert "subj-obama" in driver.page_source and "0.8100" in driver.page_source and "DEP-CONSOLE-1" in driver.page_source
    shoot(driver, "review")

    driver.find_element(By.ID, "confirmed").click()
    driver.find_element(By.ID, "reason").send_keys("face, ears and scar match the custody image")
    driver.find_element(By.ID, "engaged").send_keys("yes")
    driver.find_element(By.ID, "record").click()
    wait(lambda: "decision recorded" in driver.find_element(By.ID, "message").text, "the decision")
    assert driver.find_element(By.ID, "status").text == "confirmed"

    assert room.store.alert(event_id).status == "confirmed"
    decision = room.store.adjudications(event_id)[0]
    assert (decision["decision"], decision["reviewer"], decision["engaged"]) == ("confirmed", "adam", True)
    records = [json.loads(line) for line in room.audit_path.read_text().splitlines()]
    mine = [(r["kind"], r["details"].get("event_id")) for r in records if r["actor"] == "operator:adam"]
    assert ("alert_viewed", event_id) in mine and ("adjudication_recorded", event_id) in mine
    assert any(r["kind"] == "alert_accepted" and r["details"]["event_id"] == event_id for r in records)
    # Back at the device (issue 12.1): the decision arrives as a signed lfr.adjudication/1 notice,
    # verified under the control room's pinned key and written to the device's own audit log, after
    # the receipt that released the alert from its spool.
    assert [(a.event_id, d.decision) for a, d in room.adjudicated] == [(event_id, "confirmed")]

    def device_records(kind: str) -> list[dict]:
        return [r["details"] for r in map(json.loads, room.device_audit_path.read_text().splitlines()) if r["kind"] == kind]

    notice = wait(lambda: device_records("adjudication_received"), "the decision back at the device")[0]
    assert (notice["event_id"], notice["decision"], notice["engaged"], notice["reviewer"]) == (event_id, "confirmed", True, "adam")
    assert [r["event_id"] for r in device_records("receipt_received")] == [event_id]
    assert room.device_spool.stats().depth == 0, "the receipt released the alert from the device's spool"

    driver.get(room.url + "/fleet")
    row = wait(lambda: driver.find_elements(By.CSS_SELECTOR, 'tr[data-device="cam-01"]'), "cam-01 in the fleet view")[0]
    wait(lambda: "14.8" in row.text or driver.refresh() or False, "cam-01's telemetry", 10)
    row = driver.find_element(By.CSS_SELECTOR, 'tr[data-device="cam-01"]')
    assert "online" in row.text and "61.5" in row.text
    shoot(driver, "fleet")


def test_a_viewer_cannot_decide_and_forged_cookies_or_missing_csrf_are_refused(browser, room, fixtures_dir):
    from selenium.webdriver.common.by import By

    driver = browser
    jpeg = crop_face_jpeg(read_image(fixtures_dir / "faces" / "obama_2.jpg"), (60, 40, 200, 200))
    event_id = room.raise_alert(jpeg)
    wait(lambda: any(a.event_id == event_id for a in room.store.alerts()), "the alert in the store")

    log_in(driver, room, "vera")
    driver.get(f"{room.url}/alerts/{event_id}")
    assert driver.find_elements(By.ID, "decide") == [] and driver.find_element(By.ID, "view-only").is_displayed()
    # Even a hand-made form from the viewer's own session is refused.
    driver.execute_script("""
        const f = document.createElement('form'); f.method = 'post'; f.action = arguments[0];
        for (const [k, v] of [['csrf', arguments[1]], ['decision', 'rejected'], ['reason', 'not him']]) {
          const i = document.createElement('input'); i.name = k; i.value = v; f.appendChild(i); }
        document.body.appendChild(f); f.submit();""",
        f"/alerts/{event_id}/adjudicate", driver.find_element(By.NAME, "csrf").get_attribute("value"))
    wait(lambda: driver.find_elements(By.ID, "error"), "the refusal")
    assert "may not do this" in driver.find_element(By.ID, "error").text

    driver.delete_all_cookies()
    log_in(driver, room, "adam")
    driver.get(f"{room.url}/alerts/{event_id}")
    driver.execute_script("document.querySelector('#decide input[name=csrf]').remove()")
    driver.find_element(By.ID, "rejected").click()
    driver.find_element(By.ID, "reason").send_keys("different person")
    driver.find_element(By.ID, "record").click()
    wait(lambda: driver.find_elements(By.ID, "error"), "the CSRF refusal")
    assert "CSRF" in driver.find_element(By.ID, "error").text

    driver.delete_all_cookies()
    driver.get(room.url + "/login")
    driver.add_cookie({"name": "ea_session", "value": "forged-" + "A" * 40, "path": "/"})
    driver.get(f"{room.url}/alerts/{event_id}")
    assert driver.current_url.endswith("/login")
    assert room.store.alert(event_id).status == "pending_review" and room.store.adjudications(event_id) == []

    driver.delete_all_cookies()
    log_in(driver, room, "suki")
    driver.get(room.url + "/retention")
    shoot(driver, "retention")
