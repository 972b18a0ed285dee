"""Fuzzing a station served with remote access over real HTTPS on loopback: hostile requests to the login, logout,
whoami and every API route, with and without a valid session cookie and CSRF token, and hostile login bodies.
Never a 5xx, never an uncaught exception in the server's log, every answer within a time bound; nothing but a
valid session with its CSRF token changes the session form; the station still takes a login afterwards."""

import json
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.fuzzing import fuzz_settings, tried
from tests.support.http_fuzz import RawRequest, mostly, raw_requests, send_raw, server_errors
from tests.support.remote_station import PASSWORDS, start_remote_station
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow

PATHS = ["/", "/login", "/static/login.js", "/static/station.js", "/api/login", "/api/logout", "/api/whoami",
         "/api/sessions/revoke", "/api/status", "/api/session", "/api/start", "/api/stop", "/api/mark",
         "/api/discard", "/api/camera/side.jpg"]
BODY_KEYS = ["user", "password", "notes", "outcome", "label"]


def test_fuzz_remote_station_login_and_api_over_https(tmp_path, pty_console) -> None:
    console, port = pty_console
    station = start_remote_station(tmp_path, port, console, lockout_s=0.2, max_lockout_s=0.5)
    try:
        client = station.client()
        assert client.login("lena").status_code == 200
        token = client.http.cookies["excap_session"]
        tls = station.tls.client_context()
        own = [f"127.0.0.1:{station.port}", f"localhost:{station.port}"]
        base = raw_requests(PATHS, ["n"], BODY_KEYS, own, [station.url], [], methods=("POST", "GET"))
        session = st.sampled_from([[], [("Cookie", f"excap_session={token}")],
                                   [("Cookie", f"excap_session={token}"), ("X-CSRF-Token", client.csrf)],
                                   [("Cookie", "excap_session=" + "A" * 43), ("X-CSRF-Token", client.csrf)],
                                   [("Cookie", f"excap_session={token}; excap_session=x"),
                                    ("X-CSRF-Token", "x" * 5000)]])
        requests = st.builds(lambda r, extra: RawRequest(r.method, r.target, [*r.headers, *extra], r.body),
                             base, session)
        answered: Counter[tuple[str, int]] = Counter()
        controller = station.fixture.running.station.controller

        @fuzz_settings(120)
        @given(requests)
        def run(request: RawRequest) -> None:
            tried("remote station API (HTTPS)")
            before = dict(controller.session)
            answer = send_raw(station.port, request, tls=tls)
            if not {("Cookie", f"excap_session={token}"), ("X-CSRF-Token", client.csrf)} <= set(request.headers):
                assert dict(controller.session) == before, request.describe()
            answered[(request.target.split("?")[0], answer.status)] += 1
            assert answer.status < 500, (answer.status, request.describe())
            assert answer.seconds < 5.0, (answer.seconds, request.describe())

        text = st.one_of(st.text(max_size=40), st.just("x" * 5000), st.integers(), st.none(), st.lists(st.text()))
        bodies = st.one_of(
            st.fixed_dictionaries({"user": mostly(st.sampled_from(["olga", "lena", "nobody"]), text),
                                   "password": mostly(st.sampled_from([*PASSWORDS.values(), "wrong-password"]),
                                                      text)}).map(lambda d: json.dumps(d).encode()),
            st.binary(max_size=100), st.just(b'{"user": "olga", "password": "' + b"p" * 2000 + b'"}'))
        logins = st.builds(lambda body: RawRequest("POST", "/api/login", [
            ("Host", own[0]), ("Content-Type", "application/json"), ("Origin", station.url)], body), bodies)

        @fuzz_settings(80)
        @given(logins)
        def log_in(request: RawRequest) -> None:
            tried("remote station login (HTTPS)")
            answer = send_raw(station.port, request, tls=tls)
            answered[("/api/login", answer.status)] += 1
            assert answer.status in (200, 400, 401, 429), (answer.status, request.describe())
            assert answer.seconds < 5.0, (answer.seconds, request.describe())

        with server_errors() as errors:
            run()
            log_in()
        assert errors == [], [e.getMessage() for e in errors[:3]]
        assert answered[("/api/login", 401)] > 0 and answered[("/api/login", 429)] > 0, answered
        assert any(status == 401 for (_, status) in answered), answered
        fresh = station.client()
        wait_for(lambda: fresh.login("olga").status_code == 200, timeout=10, message="a login after the fuzz")
        assert fresh.post("/api/session", {"notes": "after the fuzz"}).status_code == 200
        fresh.close()
        client.close()
    finally:
        station.fixture.running.stop()
