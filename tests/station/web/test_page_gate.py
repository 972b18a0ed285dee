"""The station page in headless Chromium: "Start anyway" after a start refused for devices not ready, and a label
given from "Last episodes"; each tried first while its request cannot reach the station (said, never thrown)."""

import pytest

from excap.episode.labels import episode_label
from excap.station.app import RunningStation
from excap.station.config import load_station_config
from tests.support.browser import chromium, unreachable
from tests.support.gated_station import episode_events, gated_station_yaml
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow


def shown(driver, element_id: str) -> bool:
    return "hidden" not in (driver.find_element("id", element_id).get_attribute("class") or "")


def said_unreachable(driver, path: str) -> bool:
    box = driver.find_element("id", "message")
    return box.text == f"{path}: station not reachable" and "error" in (box.get_attribute("class") or "")


def test_start_anyway_and_a_label_from_the_page(tmp_path):
    path, _channel = gated_station_yaml(tmp_path)
    running = RunningStation.start(load_station_config(path), host="127.0.0.1", port=0)
    running.station.controller.ready_wait_s = 0.0
    try:
        assert running.server is not None
        url = running.server.url
        with chromium(tmp_path / "chromium-profile") as browser:
            browser.get(url)
            wait_for(lambda: browser.find_element("id", "station-id").text, message="page loaded")
            assert not shown(browser, "start-anyway")
            browser.find_element("id", "btn-start").click()
            wait_for(lambda: shown(browser, "start-anyway"), message="Start anyway offered")
            reason = browser.find_element("id", "start-anyway-reason").text
            assert reason == "not ready: camera cab (no picture yet, disconnected), can can0 (no frames yet)"
            assert not running.runtime.recording
            with unreachable(browser, "/api/start"):
                browser.find_element("id", "btn-start-anyway").click()
                wait_for(lambda: said_unreachable(browser, "/api/start"), message="start anyway: not reachable")
            assert shown(browser, "start-anyway") and not running.runtime.recording  # the offer stays
            browser.find_element("id", "btn-start-anyway").click()
            wait_for(lambda: running.runtime.recording, message="started anyway")
            wait_for(lambda: not shown(browser, "start-anyway"), message="offer withdrawn")
            wait_for(lambda: browser.find_element("id", "btn-failure").is_enabled(), message="stop buttons enabled")
            browser.find_element("id", "btn-failure").click()
            episode = wait_for(lambda: running.station.controller.last_episode, message="stopped and saved")
            assert isinstance(episode, dict)
            row = f"#recent-episodes button.success[data-episode='{episode['episode_id']}']"
            wait_for(lambda: browser.find_elements("css selector", row), message="episode listed")
            with unreachable(browser, "/api/label"):
                browser.find_element("css selector", row).click()
                wait_for(lambda: said_unreachable(browser, "/api/label"), message="label: not reachable")
            assert episode_label(episode["path"])[1] is None
            browser.find_element("css selector", row).click()
            wait_for(lambda: episode_label(episode["path"])[1] is not None, message="labelled")
            chosen = f"#recent-episodes button.success.chosen[data-episode='{episode['episode_id']}']"
            wait_for(lambda: browser.find_elements("css selector", chosen), message="the list shows the label")
            assert not [e for e in browser.get_log("browser") if "Uncaught" in e["message"]]
    finally:
        running.stop()
    recorded, label = episode_label(episode["path"])
    assert recorded == "failure" and label is not None and (label.outcome, label.source) == ("success", "page")
    [(_, detail)] = episode_events(episode["path"], "start_override")
    assert detail["source"] == "page"
