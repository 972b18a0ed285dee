"""The station page in headless Chromium, against one real station shared by the module: session form, start, live
timer and previews, marker, stop with success, hold-to-discard, the alert area for a silent console and neutralised
commands, the tablet layout at 800x1280 and 1280x800, the bounded message list, the connection-lost state and what
happened meanwhile, and a frozen preview."""

import os
import shutil
import socket
import subprocess
from pathlib import Path

import h5py
import httpx
import pytest
from selenium.webdriver.common.action_chains import ActionChains

from excap.episode.validation import validate_episode
from excap.station.web.app import StationServer
from tests.support.browser import chromium, unreachable
from tests.support.commands import excap_command
from tests.support.station import certify
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow

ACTIONS = ["btn-start", "btn-stop", "btn-success", "btn-failure", "btn-discard", "btn-marker"]
SIZES = [(800, 1280), (1280, 800)]
TOUCH = 64  # CSS px, about 15 mm on a tablet
GAP = 24  # CSS px between controls


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as driver:
        yield driver


@pytest.fixture
def station(module_station, browser):
    """The shared station, idle with commands enabled, and the page freshly loaded at the default size."""
    browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    yield module_station
    if module_station.running.runtime.recording:
        module_station.post("/api/stop", {})


def text(driver, element_id: str) -> str:
    return driver.find_element("id", element_id).text


def attribute(driver, element_id: str, name: str) -> str:
    return driver.find_element("id", element_id).get_attribute(name) or ""


def script(driver, source: str, *args):
    return driver.execute_script(source, *args)


def fill(driver, element_id: str, value: str) -> None:
    field = driver.find_element("id", element_id)

    def typed() -> bool:
        if field.get_attribute("value") == value:
            return True
        field.clear()
        field.send_keys(value)
        return field.get_attribute("value") == value

    wait_for(typed, message=f"{element_id} filled in")


def open_page(driver, station) -> None:
    driver.get(station.url)
    wait_for(lambda: station.enabled() and text(driver, "link-state") == "ENABLED"
             and text(driver, "enable-state") == "HELD", message="commands enabled shown")


def recent_refreshes(driver) -> int:
    """Times the page has asked for its list of last episodes (every 5 s)."""
    return int(attribute(driver, "recent-episodes", "data-refreshes") or 0)


def recording_shown(driver) -> bool:
    return text(driver, "rec-state") == "● REC"


def test_page_records_marks_labels_and_discards(station, browser):
    open_page(browser, station)
    wait_for(lambda: "cert" in attribute(browser, "cert-status", "class"), message="session loaded")

    # an operator without a certificate: the page says why, nothing records
    fill(browser, "session-operator", "op-nobody")
    browser.find_element("id", "session-site").click()  # leaves the field: the form is saved
    wait_for(lambda: "not in the operator registry" in text(browser, "cert-status"), message="refusal reason")
    browser.find_element("id", "btn-start").click()
    wait_for(lambda: "not recording" in text(browser, "message"), message="start refused")
    assert "error" in attribute(browser, "message", "class") and not station.running.runtime.recording

    # the session form, then start
    certify(station.out_dir, "op-7")
    fill(browser, "session-operator", "op-7")
    fill(browser, "session-site", "north pit")
    fill(browser, "session-task", "load truck")
    browser.find_element("id", "session-notes").click()
    wait_for(lambda: attribute(browser, "session-certification", "value") == "cpcs-a59 #op-7-cert",
             message="certificate read from the registry")
    assert attribute(browser, "session-machine", "value").startswith("exc-web (excavator")
    browser.find_element("id", "btn-start").click()
    wait_for(lambda: recording_shown(browser), message="recording shown")
    loads = int(attribute(browser, "cam-side", "data-loads") or 0)
    wait_for(lambda: float(attribute(browser, "rec-timer", "data-seconds") or 0) > 1.5, message="timer running")
    # the timer is the station's elapsed time of this recording, not a clock of the page
    shown, elapsed = float(attribute(browser, "rec-timer", "data-seconds")), station.status()["recording"]["elapsed_s"]
    assert 0 <= elapsed - shown < 2.0
    wait_for(lambda: int(attribute(browser, "cam-side", "data-loads")) > loads + 3, message="preview refreshing")
    # a preview being refreshed has no size until its next JPEG has loaded: wait for a loaded one
    wait_for(lambda: script(browser, "return document.getElementById('cam-top').naturalWidth") == 320,
             message="top camera preview at its recorded width")
    assert "ok" in attribute(browser, "stream-cameras-side", "class")
    assert text(browser, "can-can0").split()[0] == "can0"

    fill(browser, "marker-label", "first pass")
    browser.find_element("id", "btn-marker").click()
    wait_for(lambda: "marker 1: first pass" in text(browser, "message"), message="marker confirmed")
    browser.find_element("id", "btn-success").click()
    wait_for(lambda: text(browser, "rec-state") == "IDLE" and "(success)" in text(browser, "last-episode"),
             message="stopped with success")
    path = Path(text(browser, "last-episode").rsplit(" (", 1)[0])
    assert path.exists() and validate_episode(path) == []
    with h5py.File(path, "r") as f:
        assert f.attrs["outcome"] == "success" and f.attrs["operator_id"] == "op-7"
        assert f.attrs["site"] == "north pit" and f.attrs["task"] == "load truck"
        assert f.attrs["certification"] == "cpcs-a59 #op-7-cert"
        kinds = [k.decode() for k in f["events/kind"][()]]
        assert kinds.count("marker") == 1 and "station_action" in kinds

    # Discard acts only when held: a tap leaves the recording alone, a 1.5 s hold (with progress) discards it
    browser.find_element("id", "btn-start").click()
    wait_for(lambda: recording_shown(browser), message="second recording")
    episode_id = text(browser, "episode-id")
    discard = browser.find_element("id", "btn-discard")
    discard.click()
    wait_for(lambda: "a tap does nothing" in text(browser, "message"), message="a tap only explains the hold")
    assert station.running.runtime.recording and recording_shown(browser)
    actions = ActionChains(browser)
    actions.click_and_hold(discard).perform()
    try:
        wait_for(lambda: float(script(browser, "return parseFloat(arguments[0].querySelector('.progress')"
                                      ".style.width) || 0", discard)) > 10, message="hold progress shown")
        wait_for(lambda: "discarded" in text(browser, "last-episode"), message="discarded by the hold")
    finally:
        actions.release().perform()
    assert not list(station.out_dir.glob(f"{episode_id}*")) and len(list(station.out_dir.glob("*.h5"))) == 1


def rect(driver, element) -> dict:
    return script(driver, "const r = arguments[0].getBoundingClientRect();"
                  "return {left: r.left, right: r.right, top: r.top, bottom: r.bottom, width: r.width,"
                  " height: r.height};", element)


def separation(a: dict, b: dict) -> float:
    """The clear space between two rectangles (the larger of the horizontal and vertical gaps; < 0: overlap)."""
    return max(b["left"] - a["right"], a["left"] - b["right"], b["top"] - a["bottom"], a["top"] - b["bottom"])


def set_viewport(driver, width: int, height: int) -> None:
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
    wait_for(lambda: script(driver, "return [window.innerWidth, window.innerHeight]") == [width, height],
             message=f"viewport {width}x{height}")


OVERFLOW = """
const width = document.documentElement.clientWidth;
return Array.from(document.querySelectorAll('body *'))
  .filter((e) => e.getClientRects().length && e.getBoundingClientRect().right > width + 0.5)
  .map((e) => (e.id || e.tagName) + ':' + Math.round(e.getBoundingClientRect().right));
"""


@pytest.mark.parametrize(("width", "height"), SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_tablet_layout_fits_and_controls_are_glove_sized(station, browser, width, height):
    set_viewport(browser, width, height)
    open_page(browser, station)
    station.post("/api/start", {})
    wait_for(lambda: recording_shown(browser) and not attribute(browser, "btn-discard", "disabled"),
             message="recording shown, actions enabled")
    wait_for(lambda: all(script(browser, f"return document.getElementById('cam-{c}').naturalWidth") == 320
                         for c in ("side", "top")), message="both previews loaded")

    # no sideways scrolling, nothing sticking out to the right, no cut table columns
    assert script(browser, "return document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    assert script(browser, OVERFLOW) == []
    for table in ("streams", "can"):
        assert script(browser, f"const t = document.getElementById('{table}'); "
                               "return t.scrollWidth <= t.parentElement.clientWidth")
    # stick and command bars keep a usable width
    tracks = script(browser, "return Array.from(document.querySelectorAll('#sticks .track, #commands .track'))"
                             ".map((e) => e.getBoundingClientRect().width)")
    assert len(tracks) >= 12 and min(tracks) > 100, tracks

    # every visible control the operator touches: at least 64x64 CSS px, and 24 px clear of its neighbours
    controls = [e for e in browser.find_elements("css selector", "button, main input") if e.is_displayed()]
    assert {c.get_attribute("id") for c in controls} >= set(ACTIONS)
    rects = {c.get_attribute("id") or c.get_attribute("name"): rect(browser, c) for c in controls}
    small = {name: (r["width"], r["height"]) for name, r in rects.items() if r["width"] < TOUCH or r["height"] < TOUCH}
    assert not small, small
    names = sorted(rects)
    close = [(a, b, round(separation(rects[a], rects[b]))) for i, a in enumerate(names) for b in names[i + 1:]
             if separation(rects[a], rects[b]) < GAP]
    assert not close, close
    # Discard is far from Success and Failure: its own row, the other side, another colour
    success, failure, discard = rects["btn-success"], rects["btn-failure"], rects["btn-discard"]
    assert discard["top"] - max(success["bottom"], failure["bottom"]) >= 2 * GAP
    assert discard["left"] > success["right"]
    colours = {b: script(browser, "return getComputedStyle(document.getElementById(arguments[0])).backgroundColor",
                         b) for b in ("btn-success", "btn-failure", "btn-discard")}
    assert len(set(colours.values())) == 3, colours

    if os.environ.get("EXCAP_SCREENSHOTS"):
        wait_for(lambda: float(attribute(browser, "rec-timer", "data-seconds") or 0) > 3, message="a few seconds in")
        folder = Path(os.environ["EXCAP_SCREENSHOTS"])
        folder.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(folder / f"station-{width}x{height}.png"))
    station.post("/api/stop", {"outcome": "success"})
    wait_for(lambda: text(browser, "rec-state") == "IDLE", message="stopped")


def test_message_list_keeps_the_latest_twenty(station, browser):
    open_page(browser, station)
    station.post("/api/start", {})
    for n in range(30):
        assert station.post("/api/mark", {"label": f"pass {n}"}).status_code == 200
    wait_for(lambda: "pass 29" in text(browser, "message"), message="latest marker shown")
    items = script(browser, "return Array.from(document.querySelectorAll('#messages li')).map((e) => e.textContent)")
    assert len(items) == 20 and "pass 29" in items[0] and not any("pass 9" in i for i in items)


def beeps(driver) -> int:
    return int(script(driver, "return document.body.dataset.beeps || 0"))


def turn_sound_on(driver) -> None:
    """Browsers keep sound off until the page is touched: the page says so, and a tap turns it on."""
    hint = driver.find_element("id", "btn-sound")
    wait_for(hint.is_displayed, message="sound-off hint")
    assert hint.text == "Sound off: tap to enable"
    hint.click()
    wait_for(lambda: not hint.is_displayed(), message="sound on after a tap")


def test_page_without_web_audio_says_so_and_never_throws(station, browser):
    added = browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument",
                                    {"source": "delete window.AudioContext; delete window.webkitAudioContext;"})
    try:
        open_page(browser, station)
    finally:
        browser.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", {"identifier": added["identifier"]})
    browser.get_log("browser")  # only what follows counts
    script(browser, "document.body.dataset.alarm = 'alert'")
    ticks = script(browser, "return alarmTick")
    wait_for(lambda: script(browser, "return alarmTick") >= ticks + 3, message="alarm ticks without audio")
    assert browser.find_element("id", "btn-sound").text == "Sound off: this browser cannot play alarms"
    browser.find_element("id", "btn-sound").click()
    assert beeps(browser) == 0 and not [e for e in browser.get_log("browser") if "Uncaught" in e["message"]]


def test_alert_area_says_what_is_wrong_since_when_and_what_to_do(station, browser):
    open_page(browser, station)
    turn_sound_on(browser)
    wait_for(lambda: "hidden" in attribute(browser, "banner", "class"), message="no alerts while all is well",
             seen=lambda: text(browser, "warnings"))
    station.console.peer.pause()
    try:
        wait_for(lambda: {"stream_stale", "neutralised"} <= set(attribute(browser, "banner", "data-codes").split()),
                 message="alerts for the silent console")
        assert "red" in attribute(browser, "banner", "class") and browser.find_element("id", "banner").is_displayed()
        assert text(browser, "link-state") == "NEUTRALISED" and "stale" in text(browser, "link-fault")
        # one snapshot of the list (the page redraws it with every status: elements found before may be gone)
        alerts = script(browser, "return [...document.querySelectorAll('#warnings li')].map(li => [li.innerText, "
                                 "li.className])")
        words = [shown for shown, _ in alerts]
        neutralised = next(w for w in words if w.startswith("Commands neutralised"))
        assert "Release enable, centre the sticks" in neutralised and "since " in neutralised
        console = next(w for w in words if w.startswith("Joystick console: no data for"))
        assert "Check the joystick cable" in console
        assert not any("answering late" in w for w in words)  # the device's lateness is the stream's alert
        levels = [level for _, level in alerts]
        assert levels == sorted(levels, key=lambda c: c != "red")  # loudest first
        assert attribute(browser, "warnings", "innerHTML").count('data-sound="true"') >= 2
        wait_for(lambda: script(browser, "return document.body.dataset.alarm") == "alert", message="alert sound on")
        wait_for(lambda: beeps(browser) > 0, message="the alert beeps")
    finally:
        station.console.peer.resume()
    wait_for(station.enabled, message="commands re-enabled")
    wait_for(lambda: "hidden" in attribute(browser, "banner", "class"), message="alerts gone",
             seen=lambda: text(browser, "warnings"))


def test_connection_lost_blanks_the_page_and_reconnecting_says_what_happened(station, browser):
    open_page(browser, station)
    turn_sound_on(browser)
    running = station.running
    port = int(station.url.rsplit(":", 1)[1])
    station.post("/api/start", {})
    wait_for(lambda: recording_shown(browser), message="recording shown")
    episode_id = text(browser, "episode-id")

    running.server.stop()  # the page's station stops answering; the recording goes on
    try:
        wait_for(lambda: script(browser, "return document.body.className") == "lost", message="connection lost state")
        assert browser.find_element("id", "connection").is_displayed()
        assert "CONNECTION LOST" in text(browser, "connection-state")
        assert text(browser, "rec-state") == "REC ?" and text(browser, "rec-timer") == "--:--"
        assert text(browser, "link-state") == "UNKNOWN" and text(browser, "enable-state") == "?"
        assert all(attribute(browser, b, "disabled") for b in ACTIONS)
        assert "hidden" in attribute(browser, "banner", "class") and not text(browser, "warnings")
        assert all(c.text == "?" for c in browser.find_elements("css selector", "#streams tbody td:not(:first-child)"))
        assert script(browser, "return document.body.dataset.alarm") == "connection"
        wait_for(lambda: beeps(browser) > 0, message="the connection alarm beeps")
        refreshes = recent_refreshes(browser)  # the page's other requests fail too, and are not thrown either
        wait_for(lambda: recent_refreshes(browser) > refreshes, timeout=15, message="the episode list tried again")
        assert not [e for e in browser.get_log("browser") if "Uncaught" in e["message"]]

        # meanwhile the recording is stopped from elsewhere (a joystick gesture)
        assert running.station.controller.act("success", "joystick").ok
        assert not running.runtime.recording
    finally:  # the station's page answers again (also for the tests after this one if this one fails)
        running.parts.remove(running.server)
        running.server = StationServer(running.station, "127.0.0.1", port).start()
        running.parts.append(running.server)
    wait_for(lambda: browser.find_element("id", "summary").is_displayed(), message="meanwhile summary")
    summary = text(browser, "summary-text")
    assert summary.startswith("connection lost ") and "; meanwhile: " in summary
    assert f"recording stopped ({episode_id}, success)" in summary and "1 message" in summary
    assert script(browser, "return document.body.className") == "" and text(browser, "rec-state") == "IDLE"
    assert not attribute(browser, "btn-start", "disabled")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/api/status", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_killed_station_process_is_lost_and_its_restart_is_told(browser, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = excap_command("station", "--sim", "--port", str(port), "--out", str(tmp_path))
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: answers(url), timeout=60, message="station process serving")
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        browser.get(url)
        assert httpx.post(f"{url}/api/start", json={}, timeout=30).status_code == 200
        wait_for(lambda: recording_shown(browser), message="recording shown")
        episode_id = text(browser, "episode-id")
        process.kill()  # the station dies mid-recording
        process.wait(timeout=30)
        wait_for(lambda: script(browser, "return document.body.className") == "lost", message="connection lost")
        assert text(browser, "rec-state") == "REC ?" and all(attribute(browser, b, "disabled") for b in ACTIONS)
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: browser.find_element("id", "summary").is_displayed(), timeout=60,
                 message="meanwhile summary after the restart")
        summary = text(browser, "summary-text")
        assert "meanwhile: station restarted, recording stopped (" + episode_id in summary
        assert attribute(browser, "summary", "data-restarted") == "true" and text(browser, "rec-state") == "IDLE"
    finally:
        process.terminate()
        process.wait(timeout=60)


def test_frozen_preview_is_marked_on_the_preview(station, browser):
    open_page(browser, station)
    wait_for(lambda: "hidden" in attribute(browser, "frozen-top", "class"), message="live preview")
    station.running.runtime.cameras["top"].stop()  # the camera delivers no more pictures: the last one stays
    wait_for(lambda: browser.find_element("id", "frozen-top").is_displayed(), message="preview marked frozen")
    assert text(browser, "frozen-top").startswith("FROZEN — last picture ")
    assert "frozen" in attribute(browser, "figure-top", "class")
    assert "hidden" in attribute(browser, "frozen-side", "class")
    frames = station.status()["camera_frames"]
    assert frames["top"]["frozen"] and frames["top"]["age_s"] > 0.5 and not frames["side"]["frozen"]


def test_uplink_line_shows_the_upload_queue(station, browser, sim_episode):
    from excap.uplink.state import record_error, state_dir

    open_page(browser, station)
    wait_for(lambda: text(browser, "uplink") == "uplink: not running here", message="uplink line")
    episode = Path(station.out_dir) / "uplink-page.h5"
    shutil.copy(sim_episode, episode)
    try:
        record_error(station.out_dir, "cannot reach the object store at http://127.0.0.1:9 (connection refused)")
        wait_for(lambda: "last error: cannot reach the object store" in text(browser, "uplink"), timeout=10,
                 message="uplink error on the page")
        assert "episodes pending" in text(browser, "uplink")
    finally:
        episode.unlink()
        shutil.rmtree(state_dir(station.out_dir))


def test_a_page_opened_before_its_station_answers_starts_once_it_does(station, browser):
    """The page's first question (who is logged in) fails: the page says it is connecting, asks again, and starts
    once the station answers; nothing is thrown."""
    with unreachable(browser, "/api/whoami"):
        browser.get(station.url)
        browser.get_log("browser")  # only what follows counts
        wait_for(lambda: script(browser, "return document.readyState") == "complete", message="page loaded")
        assert script(browser, "return document.body.className") == "connecting"
    wait_for(lambda: station.enabled() and text(browser, "link-state") == "ENABLED"
             and text(browser, "enable-state") == "HELD",
             message="the page started once the station answered", seen=lambda: text(browser, "link-state"))
    assert script(browser, "return document.body.className") == ""
    assert not [e for e in browser.get_log("browser") if "Uncaught" in e["message"]]
