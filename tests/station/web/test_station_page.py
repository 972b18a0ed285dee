"""The station page in headless Chromium: session form, start, live timer and previews, marker, stop with
success, discard, and the warning banner for a silent console and neutralised commands."""

from pathlib import Path

import h5py
import pytest

from excap.episode.validation import validate_episode
from tests.support.browser import chromium
from tests.support.station import certify
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def browser(tmp_path):
    with chromium(tmp_path / "chromium-profile") as driver:
        yield driver


def text(driver, element_id: str) -> str:
    return driver.find_element("id", element_id).text


def attribute(driver, element_id: str, name: str) -> str:
    return driver.find_element("id", element_id).get_attribute(name) or ""


def fill(driver, element_id: str, value: str) -> None:
    field = driver.find_element("id", element_id)

    def typed() -> bool:
        if field.get_attribute("value") == value:
            return True
        field.clear()
        field.send_keys(value)
        return field.get_attribute("value") == value

    wait_for(typed, message=f"{element_id} filled in")


def test_page_records_marks_labels_and_discards(make_station, browser, tmp_path):
    station = make_station(policy="refuse", operator="op-1")
    certify(station.out_dir, "op-7")
    browser.get(station.url)
    wait_for(lambda: station.enabled() and text(browser, "link-state") == "ENABLED"
             and text(browser, "enable-state") == "HELD", message="commands enabled shown")
    wait_for(lambda: "cert" in attribute(browser, "cert-status", "class"), message="session loaded")

    # an operator without a certificate: the page says why, nothing records
    fill(browser, "session-operator", "op-nobody")
    browser.find_element("id", "session-site").click()  # leaves the field: the form is saved
    wait_for(lambda: "not in the operator registry" in text(browser, "cert-status"), message="refusal reason")
    browser.find_element("id", "btn-start").click()
    wait_for(lambda: "not recording" in text(browser, "message"), message="start refused")
    assert "error" in attribute(browser, "message", "class") and not station.running.runtime.recording

    # the session form, then start
    fill(browser, "session-operator", "op-7")
    fill(browser, "session-site", "north pit")
    fill(browser, "session-task", "load truck")
    browser.find_element("id", "session-notes").click()
    wait_for(lambda: attribute(browser, "session-certification", "value") == "cpcs-a59 #op-7-cert",
             message="certificate read from the registry")
    assert attribute(browser, "session-machine", "value").startswith("exc-web (excavator")
    browser.find_element("id", "btn-start").click()
    wait_for(lambda: text(browser, "rec-state") == "● REC", message="recording shown")
    loads = int(attribute(browser, "cam-side", "data-loads") or 0)
    wait_for(lambda: float(attribute(browser, "rec-timer", "data-seconds")) > 1.5, message="timer running")
    wait_for(lambda: int(attribute(browser, "cam-side", "data-loads")) > loads + 3, message="preview refreshing")
    # a preview being refreshed has no size until its next JPEG has loaded: wait for a loaded one
    wait_for(lambda: browser.execute_script("return document.getElementById('cam-top').naturalWidth") == 320,
             message="top camera preview at its recorded width")
    assert "ok" in attribute(browser, "stream-cameras-side", "class")
    assert text(browser, "can-can0").split()[0] == "can0"
    browser.save_screenshot(str(tmp_path / "station_page.png"))

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

    # a discarded episode leaves no file
    browser.find_element("id", "btn-start").click()
    wait_for(lambda: text(browser, "rec-state") == "● REC", message="second recording")
    episode_id = text(browser, "episode-id")
    browser.find_element("id", "btn-discard").click()
    browser.switch_to.alert.accept()
    wait_for(lambda: "discarded" in text(browser, "last-episode"), message="discarded")
    assert not list(station.out_dir.glob(f"{episode_id}*")) and len(list(station.out_dir.glob("*.h5"))) == 1


def test_banner_shows_a_silent_console_and_neutralised_commands(make_station, browser, tmp_path):
    station = make_station(operator="op-1")
    browser.get(station.url)
    wait_for(lambda: station.enabled() and text(browser, "link-state") == "ENABLED", message="enabled")
    wait_for(lambda: "hidden" in attribute(browser, "banner", "class"), message="no banner while all is well")
    station.console.peer.pause()
    wait_for(lambda: {"stream_stale", "neutralised"} <= set(attribute(browser, "banner", "data-codes").split()),
             message="banner for the silent console")
    assert "red" in attribute(browser, "banner", "class") and browser.find_element("id", "banner").is_displayed()
    assert text(browser, "link-state") == "NEUTRALISED" and "stale" in text(browser, "link-fault")
    assert "COMMANDS NEUTRALISED" in text(browser, "warnings")
    assert "joystick/console: no data" in text(browser, "warnings")
    browser.save_screenshot(str(tmp_path / "station_banner.png"))
