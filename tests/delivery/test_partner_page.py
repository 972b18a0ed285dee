"""The partner page and partner review videos over real HTTP: each granted episode's review video is rendered from
the partner's redacted copy (H.264, faces blurred), listed with the SHA-256 and size of the bytes served, served
with HTTP Range to a bearer token or a short-lived signed URL, and played by headless Chromium from the page."""

import hashlib
import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import av
import h5py
import httpx
import pytest

from excap.delivery.access_log import AccessLogOptions
from excap.delivery.partners import PartnerStore
from excap.delivery.serve import BackgroundServer, ServerOptions
from excap.delivery.signed_urls import LIFETIME_S, signed_url, signing_key
from tests.support.browser import chromium
from tests.support.mp4 import top_level_atoms, video_stream
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow

ACME_EPISODE = "20260601T000000Z_sim-excavator-01_aaaaaa"
BETA_EPISODE = "20260601T000100Z_sim-excavator-01_bbbbbb"


@dataclass
class Site:
    root: Path
    url: str
    tokens: dict[str, str]

    def client(self, partner: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[partner]}"} if partner else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=120)


def listed_with_videos(client: httpx.Client) -> list[dict]:
    """The partner's listing once every episode's review video is made (they are rendered in the background)."""
    def ready() -> list[dict] | None:
        episodes = client.get("/v1/episodes").json()["episodes"]
        return episodes if all("review_video" in e for e in episodes) else None

    return wait_for(ready, timeout=180, interval=0.5, message="the review videos")  # type: ignore[return-value]


@pytest.fixture(scope="module")
def site(sim_episode: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("partnerpage") / "site"
    root.mkdir()
    for name, episode_id, dataset in (("a.h5", ACME_EPISODE, "acme-set"), ("b.h5", BETA_EPISODE, "beta-set")):
        shutil.copyfile(sim_episode, root / name)
        with h5py.File(root / name, "r+") as handle:
            handle.attrs["episode_id"] = episode_id
        (root / "exports" / dataset).mkdir(parents=True)
        (root / "exports" / dataset / "episodes.jsonl").write_text(json.dumps({"episode_id": episode_id}) + "\n")
    store = PartnerStore(root)
    tokens = {"acme": store.add("acme"), "beta": store.add("beta")}
    store.grant("acme", "acme-set")
    store.grant("beta", "beta-set")
    options = ServerOptions(root=root, port=0, access_log=AccessLogOptions(refused_burst=100_000))
    with BackgroundServer(options) as server:
        yield Site(root, server.url, tokens)


def test_the_listing_names_the_review_video_it_serves(site: Site, tmp_path: Path) -> None:
    with site.client("acme") as client:
        first = client.get("/v1/episodes").json()["episodes"]
        assert [e.get("review_video_pending") for e in first] == [True]  # being made on the server's thread
        [episode] = listed_with_videos(client)
        assert "review_video_pending" not in episode
        video = episode["review_video"]
        assert video["url"] == f"/v1/episodes/{ACME_EPISODE}/review.mp4"
        whole = client.get(video["url"])
        assert whole.status_code == 200 and whole.headers["content-type"] == "video/mp4"
        assert hashlib.sha256(whole.content).hexdigest() == video["sha256"] and len(whole.content) == video["size"]
        assert whole.headers["etag"] == f'"{video["sha256"]}"'
        part = client.get(video["url"], headers={"Range": "bytes=100-299"})
        assert part.status_code == 206 and part.content == whole.content[100:300]
        assert part.headers["content-range"] == f"bytes 100-299/{video['size']}"
        head = client.head(video["url"])
        assert head.status_code == 200 and int(head.headers["content-length"]) == video["size"]
        assert client.get("/v1/episodes").json()["episodes"] == [episode]  # cached: the same bytes again
    saved = tmp_path / "review.mp4"
    saved.write_bytes(whole.content)
    atoms = top_level_atoms(saved)
    assert atoms.index("moov") < atoms.index("mdat")  # faststart: a browser can play before the whole file arrived
    with av.open(str(saved)) as container:  # no text tag but FFmpeg's own
        assert set(container.metadata) <= {"major_brand", "minor_version", "compatible_brands", "encoder"}
        assert set(container.streams.video[0].metadata) <= {"language", "handler_name", "vendor_id", "encoder"}
    stream = video_stream(saved)
    assert stream["codec"] == "h264" and stream["pix_fmt"] == "yuv420p" and int(stream["frames"]) > 20
    cached = list((site.root / ".excap" / "partner-videos" / "acme").glob("*.mp4"))
    assert [p.read_bytes() == whole.content for p in cached] == [True]


def test_another_partners_episode_is_not_served(site: Site) -> None:
    with site.client("acme") as client:
        for path in (f"/v1/episodes/{BETA_EPISODE}/review.mp4", f"/v1/episodes/{BETA_EPISODE}/review-url",
                     "/v1/episodes/no-such-episode/review.mp4"):
            assert client.get(path).status_code == 404, path
    with site.client() as anonymous:
        assert anonymous.get(f"/v1/episodes/{ACME_EPISODE}/review.mp4").status_code == 401
        assert anonymous.get(f"/v1/episodes/{ACME_EPISODE}/review-url").status_code == 401


def test_signed_urls_work_until_they_expire_and_only_unaltered(site: Site) -> None:
    with site.client("acme") as client:
        listed_with_videos(client)
        answer = client.get(f"/v1/episodes/{ACME_EPISODE}/review-url").json()
        assert abs(answer["expires"] - (time.time() + LIFETIME_S)) < 60
        expected = client.get(f"/v1/episodes/{ACME_EPISODE}/review.mp4").content
    url = answer["url"]
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert set(query) == {"token_id", "expires", "signature"} and site.tokens["acme"] not in url
    key = signing_key(site.root)
    acme_id, beta_id = site.tokens["acme"].split("_")[1], site.tokens["beta"].split("_")[1]
    expired, _ = signed_url(key, acme_id, ACME_EPISODE, now=time.time() - LIFETIME_S - 5)
    beta_signed, _ = signed_url(key, beta_id, ACME_EPISODE)  # a valid signature for a partner not granted it
    tampered = [url.replace(f"expires={query['expires']}", f"expires={int(query['expires']) + 3600}"),
                url.replace(query["signature"], query["signature"][::-1]),
                url.replace(f"token_id={acme_id}", f"token_id={beta_id}"),
                url.replace(ACME_EPISODE, BETA_EPISODE), expired, url + "&signature=" + "0" * 64]
    with site.client() as anonymous:
        signed = anonymous.get(url)
        assert signed.status_code == 200 and signed.content == expected
        part = anonymous.get(url, headers={"Range": "bytes=-100"})
        assert part.status_code == 206 and part.content == expected[-100:]
        for bad in tampered:
            assert anonymous.get(bad).status_code == 403, bad
        assert anonymous.get(beta_signed).status_code == 404  # acme's episode is not beta's
        signed_query = urlsplit(url).query
        for elsewhere in ("/v1/episodes", f"/v1/episodes/{ACME_EPISODE}", "/v1/datasets",
                          f"/v1/episodes/{ACME_EPISODE}/review-url"):
            assert anonymous.get(f"{elsewhere}?{signed_query}").status_code == 401, elsewhere
    log = (site.root / ".excap" / "access.log").read_text()
    assert query["signature"] not in log and site.tokens["acme"] not in log


def test_a_revoked_partners_signed_url_stops_working(sim_episode: Path, tmp_path: Path) -> None:
    root = tmp_path / "site"
    root.mkdir()
    shutil.copyfile(sim_episode, root / "a.h5")
    with h5py.File(root / "a.h5", "r+") as handle:
        handle.attrs["episode_id"] = ACME_EPISODE
    (root / "exports" / "set").mkdir(parents=True)
    (root / "exports" / "set" / "episodes.jsonl").write_text(json.dumps({"episode_id": ACME_EPISODE}) + "\n")
    store = PartnerStore(root)
    token = store.add("acme")
    store.grant("acme", "set")
    with BackgroundServer(ServerOptions(root=root, port=0)) as server, \
            httpx.Client(base_url=server.url, timeout=120) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        listed_with_videos(client)
        url = client.get(f"/v1/episodes/{ACME_EPISODE}/review-url").json()["url"]
        del client.headers["Authorization"]
        assert client.head(url).status_code == 200
        store.revoke("acme")
        assert client.head(url).status_code == 403


def test_the_page_plays_each_episodes_review_video(site: Site, tmp_path: Path) -> None:
    with site.client() as anonymous:
        page = anonymous.get("/")
        assert page.status_code == 200 and "<video" not in page.text and "partner.js" in page.text
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert anonymous.get("/partner").text == page.text
        assert anonymous.get("/static/partner/partner.js").headers["content-type"].startswith("text/javascript")
        assert anonymous.get("/static/partner/nothing.js").status_code == 404
    with chromium(tmp_path / "chromium") as browser:
        browser.get(site.url)
        browser.find_element("css selector", "#token").send_keys(site.tokens["acme"])
        browser.find_element("css selector", "#login button").click()
        wait_for(lambda: browser.find_elements("css selector", "video.review-video"), timeout=120,
                 message="the video element")
        assert browser.current_url.rstrip("/") == site.url.rstrip("/")  # the token never went into a URL
        rows = browser.execute_script("return Array.from(document.querySelectorAll('#episodes tbody tr'))"
                                      ".map((r) => r.dataset.episode);")
        assert rows == [ACME_EPISODE]
        datasets = browser.execute_script("return document.querySelector('#datasets tbody').textContent;")
        assert "acme-set" in datasets and "beta-set" not in datasets
        state = ("const v = document.querySelector('video.review-video'); "
                 "return [v.readyState, v.error && v.error.code, v.currentSrc];")
        wait_for(lambda: browser.execute_script(state)[0] >= 2, timeout=60, message="the video's first frame")
        _, error, source = browser.execute_script(state)
        assert error is None and "signature=" in source and site.tokens["acme"] not in source
        browser.execute_script("document.querySelector('video.review-video').play();")
        wait_for(lambda: browser.execute_script(
            "return document.querySelector('video.review-video').currentTime;") > 0.2, message="the video playing")
        assert browser.execute_script(state)[1] is None
        stored = browser.execute_script("return [localStorage.length, Object.keys(sessionStorage)];")
        assert stored == [0, ["excap-partner-token"]]
