"""Other web pages cannot drive the station.

A page served from another loopback port, opened in headless Chromium while the station runs, submits forms and
fetch() requests to the station's API; a name that resolves to the station (DNS rebinding) is refused; raw
requests with a foreign Host, Origin or a non-JSON body are refused. The station's real state is checked after
each attempt, and the guard's own count shows the attempts did reach it.
"""

import http.client
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from excap.episode.validation import validate_episode
from tests.support.browser import chromium
from tests.support.station import StationFixture, certify
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow


class AttackerSite:
    """Web pages on another loopback port (another origin), as a page the operator opens would be."""

    def __init__(self) -> None:
        self.pages: dict[str, str] = {}
        pages = self.pages

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = pages.get(self.path, "not here").encode()
                self.send_response(200 if self.path in pages else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def attacker() -> Iterator[AttackerSite]:
    site = AttackerSite()
    yield site
    site.close()


def attack_page(station: str, action: str) -> str:
    """What a page can make a browser send without the station's consent: an HTML form with no fields (an empty
    body), one whose text/plain body is shaped as JSON, a fetch() in no-cors mode; and a JSON fetch(), which the
    browser only sends after a preflight the station does not grant. The title says when all were sent."""
    return f"""<!doctype html><title>pictures</title>
<iframe name="one"></iframe><iframe name="two"></iframe>
<form id="empty" method="POST" action="{station}{action}" target="one"></form>
<form id="plain" method="POST" action="{station}{action}" enctype="text/plain" target="two">
  <input name='{{"operator":"op-1","notes":"' value='"}}'></form>
<script>
const simple = fetch("{station}{action}", {{method: "POST", mode: "no-cors"}}).catch(() => null);
const json = fetch("{station}{action}", {{method: "POST", body: "{{}}",
                                         headers: {{"Content-Type": "application/json"}}}}).catch(() => null);
Promise.all([simple, json]).then(() => {{
  document.getElementById("empty").submit();
  document.getElementById("plain").submit();
  document.title = "sent";
}});
</script>"""


def open_attack(browser, attacker: AttackerSite, station: StationFixture, action: str) -> None:
    name = f"/{action.strip('/').replace('/', '-')}.html"
    attacker.pages[name] = attack_page(station.url, action)
    browser.get(attacker.url + name)
    wait_for(lambda: browser.title == "sent", message="the attacking page sent its requests")


def guard(station: StationFixture):
    assert station.running.server is not None
    return station.running.server.guard


def test_a_page_of_another_origin_cannot_start_or_discard(make_station, attacker, tmp_path: Path) -> None:
    station = make_station(policy="refuse", operator="op-1")
    certify(station.out_dir, "op-1")
    runtime = station.running.runtime
    with chromium(tmp_path / "chromium-profile", "--host-resolver-rules=MAP rebind.test 127.0.0.1") as browser:
        refused = guard(station).refused
        open_attack(browser, attacker, station, "/api/start")
        # the no-cors fetch and both forms reach the station and are refused; the JSON fetch stops at its preflight
        wait_for(lambda: guard(station).refused >= refused + 3, message="three refused attempts")
        assert not runtime.recording and not list(station.out_dir.glob("*.h5"))

        assert station.post("/api/start").status_code == 200  # the operator starts a recording
        wait_for(lambda: runtime.recording, message="recording")
        episode_id = runtime.recorder.metadata.episode_id
        for action in ("/api/discard", "/api/stop", "/api/mark"):
            before = guard(station).refused
            open_attack(browser, attacker, station, action)
            wait_for(lambda before=before: guard(station).refused >= before + 3, message=f"attempts at {action}")
        assert runtime.recording and runtime.recorder.metadata.episode_id == episode_id
        assert runtime.markers == 0

        # DNS rebinding: a foreign name that resolves to the station gets no page
        before = guard(station).refused
        browser.get(station.url.replace("127.0.0.1", "rebind.test") + "/")
        wait_for(lambda: "does not answer to that Host" in browser.page_source, message="the refusal shown")
        assert guard(station).refused > before and "btn-start" not in browser.page_source

        # the station's own page still drives it
        browser.get(station.url)
        wait_for(lambda: browser.find_element("id", "rec-state").text == "● REC", message="own page shows REC")
        browser.find_element("id", "btn-success").click()
        wait_for(lambda: "(success)" in browser.find_element("id", "last-episode").text,
                 message="stopped from the station's own page")
    (path,) = wait_for(lambda: list(station.out_dir.glob("*.h5")), message="the episode file")
    assert path.stem == episode_id and validate_episode(path) == []


def raw(station: StationFixture, method: str, path: str, headers: dict[str, str],
        body: bytes = b"") -> tuple[int, dict]:
    port = int(station.url.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        data = response.read()
        return response.status, json.loads(data) if data.startswith(b"{") else {}
    finally:
        connection.close()


def test_foreign_hosts_origins_and_form_bodies_are_refused(make_station) -> None:
    station = make_station(policy="refuse", operator="op-1")
    certify(station.out_dir, "op-1")
    port = int(station.url.rsplit(":", 1)[1])
    own = {"Host": f"127.0.0.1:{port}"}
    json_body = {**own, "Content-Type": "application/json"}
    for host in ("evil.example", f"evil.example:{port}", f"rebind.test:{port}", f"127.0.0.1:{port + 1}"):
        for method, path in (("GET", "/"), ("GET", "/api/status"), ("POST", "/api/start")):
            status, answer = raw(station, method, path, {**json_body, "Host": host}, b"{}")
            assert status == 421 and "Host" in answer["detail"], (host, path)
    status, _ = raw(station, "POST", "/api/start", {**json_body, "Origin": "http://evil.example"}, b"{}")
    assert status == 403
    status, _ = raw(station, "POST", "/api/start", {**own, "Content-Type": "application/x-www-form-urlencoded"},
                    b"operator=op-1")
    assert status == 415
    status, _ = raw(station, "POST", "/api/start", {**own, "Content-Type": "text/plain"}, b'{"operator": "op-1"}')
    assert status == 415
    assert not station.running.runtime.recording
    for origin in ({}, {"Origin": station.url}):  # scripts without an Origin, and the page itself
        status, answer = raw(station, "POST", "/api/start", {**json_body, **origin}, b"{}")
        assert status == 200 and answer["ok"]
        status, answer = raw(station, "POST", "/api/discard", {**json_body, **origin}, b"{}")
        assert status == 200 and answer["action"] == "discard"
    assert guard(station).refused == 4 * 3 + 3
