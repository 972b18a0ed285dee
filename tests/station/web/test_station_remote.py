"""A station served to the network (`--allow-remote`): HTTPS only, every request needs a login, every state-changing
request the login's CSRF token and a role allowed to make it; failed logins are rate-limited, sessions expire, and
the Host and Origin checks still hold. Real HTTPS over loopback to a running simulated station."""

import re
import subprocess
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from excap.episode.validation import validate_episode
from tests.support.browser import chromium
from tests.support.commands import excap_command
from tests.support.remote_station import PASSWORDS, Client, RemoteStation, start_remote_station
from tests.support.station import certify
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow

API_GETS = ["/api/status", "/api/session", "/api/whoami", "/api/camera/side.jpg", "/static/station.js"]
API_POSTS = ["/api/start", "/api/stop", "/api/discard", "/api/mark", "/api/session", "/api/logout",
             "/api/sessions/revoke"]


@pytest.fixture
def make_remote(tmp_path, pty_console):
    console, port = pty_console
    started: list[RemoteStation] = []
    clients: list[Client] = []

    def make(**auth: float) -> RemoteStation:
        station = start_remote_station(tmp_path, port, console, **auth)
        started.append(station)
        wait_for(station.fixture.enabled, message="commands enabled")
        return station

    def client(station: RemoteStation) -> Client:
        clients.append(station.client())
        return clients[-1]

    make.client = client  # type: ignore[attr-defined]
    yield make
    for one in clients:
        one.close()
    for station in started:
        station.fixture.running.stop()


def test_without_a_login_every_api_route_is_401_and_the_page_sends_to_the_login(make_remote) -> None:
    station = make_remote()
    anonymous = make_remote.client(station)
    for path in API_GETS:
        answer = anonymous.get(path)
        assert answer.status_code == 401, path
        assert answer.json() == {"detail": "log in first"}
    for path in API_POSTS:
        assert anonymous.post(path, {}, csrf="anything").status_code == 401, path
    page = anonymous.get("/", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/login"
    login_page = anonymous.get("/login")
    assert login_page.status_code == 200 and 'id="login-form"' in login_page.text
    assert anonymous.get("/static/login.js").status_code == 200
    assert not station.fixture.running.runtime.recording
    with pytest.raises(httpx.TransportError):  # HTTPS only: plain HTTP gets no answer
        httpx.get(station.url.replace("https://", "http://") + "/api/status", timeout=5)


def test_login_sets_a_strict_session_cookie_and_logout_ends_it(make_remote) -> None:
    station = make_remote()
    client = make_remote.client(station)
    answer = client.login("olga")
    assert answer.status_code == 200
    assert answer.json()["user"] == "olga" and answer.json()["role"] == "operator"
    cookie = answer.headers["set-cookie"]
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "secure", "samesite=strict", "path=/"} <= flags, cookie
    token = re.match(r"excap_session=([A-Za-z0-9_-]+)", cookie)
    assert token is not None and len(token.group(1)) >= 43  # 32 random bytes
    assert client.get("/api/status").status_code == 200
    assert client.get("/").status_code == 200
    whoami = client.get("/api/whoami").json()
    assert whoami["csrf"] == client.csrf and whoami["permissions"] == ["operate", "view"]
    assert client.post("/api/logout").status_code == 200
    assert client.get("/api/status").status_code == 401
    stolen = httpx.get(f"{station.url}/api/status", cookies={"excap_session": token.group(1)},
                       verify=station.tls.client_context())
    assert stolen.status_code == 401  # the token itself is dead, not only the client's cookie


def test_wrong_passwords_are_refused_and_rate_limited(make_remote) -> None:
    station = make_remote(max_failures=3, lockout_s=1.0)
    client = make_remote.client(station)
    assert client.login("olga", "not-her-password").status_code == 401
    assert client.login("nobody", "whatever-it-is").status_code == 401
    assert client.login("olga", "").status_code == 401
    locked = client.login("olga")  # the right password, but the address and the name are locked out
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) >= 1
    assert client.login("lena").status_code == 429  # per address too
    assert client.get("/api/status").status_code == 401
    wait_for(lambda: client.login("olga").status_code == 200, timeout=10, message="lockout over")
    assert client.get("/api/status").status_code == 200
    assert client.login("olga", "wrong again").status_code == 401  # a good login cleared the counts: no lockout
    assert client.login("olga").status_code == 200
    assert client.post("/api/login", {"user": ["x"], "password": 1}).status_code == 400


def test_a_burst_of_parallel_wrong_logins_gets_no_more_password_checks_than_the_limit(make_remote) -> None:
    station = make_remote(max_failures=3, lockout_s=30.0)
    client = make_remote.client(station)
    with ThreadPoolExecutor(16) as pool:
        statuses = Counter(pool.map(lambda i: client.login("olga", f"guess-{i:04d}").status_code, range(40)))
    assert set(statuses) == {401, 429} and statuses[401] <= 3 + 1, statuses  # two checks at a time at most
    assert client.login("olga").status_code == 429


def test_state_changing_requests_need_the_csrf_token(make_remote) -> None:
    station = make_remote()
    client = make_remote.client(station)
    client.login("olga")
    body = {"notes": "csrf check"}
    assert client.post("/api/session", body, csrf="").status_code == 403
    assert client.post("/api/session", body, csrf="x" * 43).status_code == 403
    other = make_remote.client(station)
    other.login("lena")
    assert client.post("/api/session", body, csrf=other.csrf).status_code == 403  # another session's token
    assert station.fixture.running.station.controller.session.get("notes") != "csrf check"
    answer = client.post("/api/session", body)
    assert answer.status_code == 200 and answer.json()["session"]["notes"] == "csrf check"


def test_an_operator_cannot_do_what_only_a_site_lead_may(make_remote) -> None:
    station = make_remote()
    operator, lead = make_remote.client(station), make_remote.client(station)
    operator.login("olga")
    lead.login("lena")
    refused = operator.post("/api/sessions/revoke", {"user": "lena"})
    assert refused.status_code == 403 and "operator" in refused.json()["detail"]
    assert operator.post("/api/policy", {"policy": "warn"}).status_code == 403  # any administrative route
    overriding = operator.post("/api/start", {"override": True})  # starting past the device check is the lead's
    assert overriding.status_code == 403 and "may not start" in overriding.json()["detail"]
    by_lead = lead.post("/api/start", {"override": True})  # allowed; the station may still refuse (certification)
    assert by_lead.status_code in (200, 409) and "role" not in by_lead.text
    if by_lead.status_code == 200:
        assert operator.post("/api/stop", {}).status_code == 200
    assert lead.get("/api/status").status_code == 200
    ended = lead.post("/api/sessions/revoke", {"user": "olga"})
    assert ended.status_code == 200 and ended.json()["ended"] == 1
    assert operator.get("/api/status").status_code == 401


def test_removing_a_user_ends_their_sessions(make_remote) -> None:
    from excap.station.users import remove_user

    station = make_remote()
    client = make_remote.client(station)
    client.login("olga")
    assert client.get("/api/status").status_code == 200
    remove_user(station.users_file, "olga")
    assert client.get("/api/status").status_code == 401
    assert client.login("olga").status_code == 401


def test_sessions_expire_when_idle_and_at_their_maximum_age(make_remote) -> None:
    station = make_remote(idle_s=1.0, max_age_s=3.0)
    idle, busy = make_remote.client(station), make_remote.client(station)
    idle.login("olga")
    busy.login("lena")
    wait_for(lambda: busy.get("/api/status").status_code == 200 and len(station.auth.sessions) == 1,
             timeout=10, message="the idle session ended")
    assert idle.get("/api/status").status_code == 401
    assert busy.get("/api/status").status_code == 200  # kept alive by its requests, until its maximum age
    wait_for(lambda: busy.get("/api/status").status_code == 401, timeout=10, message="maximum age reached")


def test_host_and_origin_checks_hold_in_remote_mode(make_remote) -> None:
    station = make_remote()
    client = make_remote.client(station)
    client.login("lena")
    foreign_host = client.http.get("/api/status", headers={"Host": "evil.example"})
    assert foreign_host.status_code == 421
    for origin in ("https://evil.example", station.url.replace("https://", "http://"), "null"):
        answer = client.post("/api/session", {"notes": "cross"}, headers={"Origin": origin})
        assert answer.status_code == 403, origin
    assert client.post("/api/login", {"user": "olga", "password": PASSWORDS["olga"]},
                       headers={"Origin": "https://evil.example"}).status_code == 403
    assert client.post("/api/session", {"notes": "same"}, headers={"Origin": station.url}).status_code == 200
    plain = client.http.post("/api/session", content=b"notes=x", headers={
        "Content-Type": "application/x-www-form-urlencoded", "X-CSRF-Token": client.csrf})
    assert plain.status_code == 415
    assert station.fixture.running.station.controller.session.get("notes") == "same"


def test_log_in_on_the_login_page_and_record_over_https(make_remote, tmp_path) -> None:
    station = make_remote()
    certify(station.fixture.out_dir, "op-1")
    runtime = station.fixture.running.runtime
    with chromium(tmp_path / "chromium-profile", "--ignore-certificate-errors") as driver:
        driver.get(station.url + "/")
        wait_for(lambda: driver.current_url.endswith("/login"), message="sent to the login page")
        driver.find_element("id", "login-user").send_keys("olga")
        driver.find_element("id", "login-password").send_keys("wrong password")
        driver.find_element("id", "login-button").click()
        wait_for(lambda: "wrong" in driver.find_element("id", "login-message").text, message="refusal shown")
        driver.find_element("id", "login-password").send_keys(PASSWORDS["olga"])
        driver.find_element("id", "login-button").click()
        wait_for(lambda: driver.current_url.rstrip("/") == station.url, message="station page after the login")
        wait_for(lambda: driver.find_element("id", "station-id").text == "test-station", message="status shown")
        wait_for(lambda: driver.find_element("id", "btn-start").is_enabled(), message="start enabled")
        driver.find_element("id", "btn-start").click()
        wait_for(lambda: runtime.recording, message="recording started from the page")
        wait_for(lambda: driver.find_element("id", "btn-success").is_enabled(), message="stop enabled")
        driver.find_element("id", "btn-success").click()
        wait_for(lambda: not runtime.recording and runtime.last is not None, message="recording stopped")
        cookies = {c["name"]: c for c in driver.get_cookies()}
        assert cookies["excap_session"]["httpOnly"] and cookies["excap_session"]["secure"]
        assert cookies["excap_session"]["sameSite"] == "Strict"
        assert driver.execute_script("return document.cookie") == ""  # HttpOnly: not readable by scripts
        assert driver.find_element("id", "logged-in-as").text == "Logged in as olga (operator)"
        # a script click: on a loaded machine a late status can make the page show its reconnect summary over the
        # button (a real click would then hit the summary)
        driver.execute_script("document.getElementById('btn-logout').click()")
        wait_for(lambda: driver.current_url.endswith("/login"), message="back to the login page")
        assert station.auth.sessions.end_user("olga") == 0  # the page's logout ended the session
    assert validate_episode(Path(runtime.last.path)) == []


def test_allow_remote_without_tls_is_refused_with_one_line(tmp_path) -> None:
    result = subprocess.run(excap_command("station", "--sim", "--allow-remote", "--host", "0.0.0.0", "--out",
                                          str(tmp_path)), capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "excap: error: --allow-remote needs --tls-cert FILE and --tls-key FILE: a station served to the network "
        "takes logins and commands over HTTPS only"]
    assert not (tmp_path / ".recording").exists()
