"""Fuzzing the station page's server over a real loopback socket while the station runs: random methods, paths,
Host/Origin/Content-Type headers, huge values and JSON or garbage bodies for every endpoint (start, stop,
discard, mark and the session form included). Never a 5xx, never an uncaught exception in the server's log, every
answer within a time bound, and the station still records a valid episode afterwards."""

import json
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from excap.episode.validation import validate_episode
from tests.support.fuzzing import fuzz_settings, tried
from tests.support.http_fuzz import RawRequest, raw_requests, send_raw, server_errors
from tests.support.station import certify

pytestmark = pytest.mark.slow

PATHS = ["/", "/static/station.js", "/static/station.css", "/static/..%2fstation_web.py", "/api/status",
         "/api/session", "/api/start", "/api/stop", "/api/discard", "/api/mark", "/api/camera/side.jpg",
         "/api/camera/..%2f..%2fx.jpg", "/api/camera/" + "c" * 2000 + ".jpg", "/login", "/static/login.js",
         "/api/login", "/api/logout", "/api/whoami", "/api/sessions/revoke"]
BODY_KEYS = ["operator", "site", "task", "notes", "outcome", "label", "user", "password"]


def test_fuzz_station_api_over_a_real_socket(make_station) -> None:
    station = make_station(policy="refuse", operator="op-1")
    certify(station.out_dir, "op-1")  # so that some random starts do record, and stop/mark/discard act on them
    port = int(station.url.rsplit(":", 1)[1])
    requests = raw_requests(PATHS, ["n"], BODY_KEYS, [f"127.0.0.1:{port}", f"localhost:{port}"],
                            [station.url], [], methods=("POST", "GET"))

    answered: Counter[tuple[str, int]] = Counter()

    @fuzz_settings(150)
    @given(requests)
    def run(request: RawRequest) -> None:
        tried("station API (loopback socket)")
        answer = send_raw(port, request)
        answered[(request.target.split("?")[0], answer.status)] += 1
        assert answer.status < 500, (answer.status, request.describe())
        assert answer.seconds < 5.0, (answer.seconds, request.describe())

    actions = st.builds(lambda path, body, origin: RawRequest("POST", path, [
        ("Host", f"127.0.0.1:{port}"), ("Content-Type", "application/json"), *origin], body),
        st.sampled_from(["/api/start", "/api/stop", "/api/mark", "/api/discard", "/api/session"]),
        st.one_of(st.dictionaries(st.sampled_from(BODY_KEYS), st.one_of(
            st.sampled_from(["op-1", "success", "failure", "", "op-nobody"]), st.text(max_size=40),
            st.integers(), st.none(), st.lists(st.integers(), max_size=2), st.just("x" * 20_000)), max_size=3).map(
            lambda d: json.dumps(d).encode()), st.binary(max_size=50), st.just(b"[1, 2]")),
        st.sampled_from([[], [("Origin", station.url)]]))

    @fuzz_settings(150)
    @given(actions)
    def act(request: RawRequest) -> None:
        tried("station API actions (loopback socket)")
        answer = send_raw(port, request)
        answered[(request.target, answer.status)] += 1
        assert answer.status < 500, (answer.status, request.describe())
        assert answer.seconds < 5.0, (answer.seconds, request.describe())

    with server_errors() as errors:
        run()
        act()
    assert errors == [], [e.getMessage() for e in errors[:3]]
    for action in ("/api/start", "/api/stop", "/api/mark", "/api/discard"):  # handlers reached, not only the guard
        assert answered[(action, 200)] + answered[(action, 409)] > 0, answered
    runtime = station.running.runtime
    if runtime.recording:
        assert station.post("/api/discard").status_code == 200
    assert station.post("/api/session", {"operator": "op-1", "notes": "after the fuzz"}).status_code == 200
    assert station.post("/api/start").status_code == 200
    path = station.post("/api/stop", {"outcome": "success"}).json()["path"]
    assert validate_episode(Path(path)) == []
