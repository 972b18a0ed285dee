"""The page's "Last episodes": the station folder's last episodes over the API, and labels given from the page."""

import h5py
import httpx
import pytest

from excap.episode.labels import episode_label
from excap.episode.validation import validate_episode
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow


def record(station, outcome: str = "") -> dict:
    assert station.post("/api/start").status_code == 200
    wait_for(lambda: station.status()["recording"]["elapsed_s"] > 0.3, message="recording")
    stopped = station.post("/api/stop", {"outcome": outcome} if outcome else {})
    assert stopped.status_code == 200, stopped.text
    return stopped.json()


def test_recent_episodes_and_a_label_round_trip(make_station):
    station = make_station(policy="mark", operator="op-3")
    first, second = record(station, "failure"), record(station)
    listing = httpx.get(f"{station.url}/api/episodes/recent", timeout=10).json()["episodes"]
    assert [e["episode_id"] for e in listing] == [second["episode_id"], first["episode_id"]]
    assert [(e["outcome"], e["label"], e["effective_outcome"]) for e in listing] == [
        ("unlabeled", "", "unlabeled"), ("failure", "", "failure")]
    assert listing[0]["duration_s"] > 0.2 and listing[0]["started_at"] and listing[0]["file"].endswith(".h5")

    labelled = station.post("/api/label", {"episode": second["episode_id"], "outcome": "success"})
    assert labelled.status_code == 200, labelled.text
    assert labelled.json()["outcome"] == "success" and labelled.json()["previous"] == "unlabeled"
    recorded, label = episode_label(second["path"])
    assert recorded == "unlabeled" and label is not None
    assert (label.outcome, label.by, label.source) == ("success", "op-3", "page")
    assert validate_episode(second["path"]) == []
    listing = httpx.get(f"{station.url}/api/episodes/recent", timeout=10).json()["episodes"]
    assert (listing[0]["label"], listing[0]["effective_outcome"]) == ("success", "success")
    assert station.status()["messages"][-1]["text"].endswith("outcome success (was unlabeled)")

    assert station.post("/api/label", {"episode": first["episode_id"], "outcome": "maybe"}).status_code == 400
    assert station.post("/api/label", {"episode": "no-such-episode", "outcome": "success"}).status_code == 404
    assert station.post("/api/label", {"episode": "../../etc/passwd", "outcome": "success"}).status_code == 404
    assert station.post("/api/label", {"outcome": "success"}).status_code == 400
    with h5py.File(first["path"], "r") as f:
        assert "label" not in [k.decode() for k in f["events/kind"][()]]


def test_the_page_serves_its_episode_script(make_station):
    station = make_station(policy="mark", operator="op-3")
    page = httpx.get(station.url, timeout=10).text
    assert 'id="btn-start-anyway"' in page and 'id="recent-episodes"' in page and "station_episodes.js" in page
    script = httpx.get(f"{station.url}/static/station_episodes.js", timeout=10)
    assert script.status_code == 200 and "/api/label" in script.text
