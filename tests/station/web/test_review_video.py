"""The review video of an episode on the station page: listed with the last episodes, served with HTTP Range, and
played by Chromium's `<video>` (H.264 from `excap render`)."""

import shutil
from pathlib import Path

import httpx
import pytest

from excap.datasets.h264 import H264Writer
from excap.review.render import render_review_video
from tests.support.browser import chromium
from tests.support.station_process import station_process
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow


def test_the_page_plays_an_episodes_review_video(sim_episode: Path, tmp_path: Path) -> None:
    out = tmp_path / "episodes"
    out.mkdir()
    episode = out / sim_episode.name
    shutil.copy(sim_episode, episode)
    render_review_video(episode, episode.with_suffix(".mp4"), fps=5.0, progress=False, writer=H264Writer)
    size = episode.with_suffix(".mp4").stat().st_size
    with station_process("--sim", "--headless", "--port", "0", "--out", str(out)) as station:
        url = station.url()
        assert url is not None
        listed = httpx.get(f"{url}/api/episodes/recent", timeout=10).json()["episodes"]
        assert [(e["file"], e["review_video"]) for e in listed] == [(episode.name, episode.with_suffix(".mp4").name)]
        video_url = f"{url}/api/episodes/{listed[0]['episode_id']}/review.mp4"
        part = httpx.get(video_url, headers={"Range": "bytes=100-299"}, timeout=10)
        assert part.status_code == 206 and part.content == episode.with_suffix(".mp4").read_bytes()[100:300]
        assert part.headers["content-range"] == f"bytes 100-299/{size}"
        assert part.headers["content-type"] == "video/mp4"
        assert httpx.get(f"{url}/api/episodes/no-such-episode/review.mp4", timeout=10).status_code == 404

        with chromium(tmp_path / "chromium") as browser:
            browser.get(url)
            wait_for(lambda: browser.find_elements("css selector", "video.review-video"), message="the video element")
            state = ("const v = document.querySelector('video.review-video'); "
                     "return [v.readyState, v.error && v.error.code];")
            wait_for(lambda: browser.execute_script(state)[0] >= 2, message="the video's first frame")
            assert browser.execute_script(state)[1] is None
            browser.execute_script("document.querySelector('video.review-video').play();")
            wait_for(lambda: browser.execute_script(
                "return document.querySelector('video.review-video').currentTime;") > 0.2, message="the video playing")
            assert browser.execute_script(state)[1] is None
