"""`excap station` from the command line: `--headless` still serves the page and API (for a tablet), on loopback
without a login, and to the network only over HTTPS with a login of a station user."""

import subprocess
from pathlib import Path

import httpx
import pytest

from excap.station.users import add_user, users_path
from tests.support.commands import excap_command
from tests.support.station_process import station_process
from tests.support.tls import self_signed

pytestmark = pytest.mark.slow

PASSWORD = "tablet-password-1"


def test_a_headless_station_serves_the_page_and_api_on_loopback(tmp_path: Path) -> None:
    with station_process("--sim", "--headless", "--port", "0", "--out", str(tmp_path / "episodes")) as station:
        url = station.url()
        assert url is not None and url.startswith("http://127.0.0.1:")
        status = httpx.get(f"{url}/api/status", timeout=10)
        assert status.status_code == 200 and status.json()["recording"]["active"] is False
        assert 'src="/static/station.js"' in httpx.get(f"{url}/", timeout=10).text
        assert httpx.get(f"{url}/api/whoami", timeout=10).json()["login"] is False
        started = httpx.post(f"{url}/api/session", json={"notes": "from a tablet"}, timeout=10,
                             headers={"X-CSRF-Token": ""})  # the page's empty token is harmless on loopback
        assert started.status_code == 200
    assert station.process.returncode == 0


def test_a_headless_remote_station_needs_https_and_a_login(tmp_path: Path) -> None:
    out = tmp_path / "episodes"
    add_user(users_path(out), "tab", "operator", PASSWORD)
    tls = self_signed(tmp_path / "tls")
    with station_process("--sim", "--headless", "--port", "0", "--out", str(out), "--allow-remote", "--tls-cert",
                         str(tls.cert), "--tls-key", str(tls.key), "--allowed-host", "station.example",
                         "--session-idle", "5") as station:
        url = station.url()
        assert url is not None and url.startswith("https://127.0.0.1:")
        with httpx.Client(base_url=url, verify=tls.client_context(), timeout=10) as client:
            assert client.get("/api/status").status_code == 401
            login = client.post("/api/login", json={"user": "tab", "password": PASSWORD})
            assert login.status_code == 200 and login.json()["idle_timeout_s"] == 300
            assert client.get("/api/status").json()["recording"]["active"] is False
            port = url.rsplit(":", 1)[1]
            assert client.get("/api/status", headers={"Host": f"station.example:{port}"}).status_code == 200
            assert client.get("/api/status", headers={"Host": f"other.example:{port}"}).status_code == 421


@pytest.mark.parametrize(("extra", "message"), [
    (["--tls-cert", "cert.pem"], "--tls-cert and --tls-key go together"),
    (["--no-remote", "--tls-cert", "cert.pem", "--tls-key", "key.pem"], "go with --allow-remote"),
    (["--no-remote", "--users", "users.yaml"], "go with --allow-remote"),
    (["--tls-cert", "cert.pem", "--tls-key", "missing.pem"], "cannot use TLS certificate"),
    (["--tls-cert", "cert.pem", "--tls-key", "key.pem"], "no station users file"),
    (["--tls-cert", "cert.pem", "--tls-key", "key.pem", "--session-idle", "0"], "must be positive"),
])
def test_remote_access_without_what_it_needs_is_refused_with_one_line(tmp_path: Path, extra: list[str],
                                                                      message: str) -> None:
    tls = self_signed(tmp_path)
    assert (tls.cert.name, tls.key.name) == ("station-cert.pem", "station-key.pem")
    (tmp_path / "cert.pem").write_bytes(tls.cert.read_bytes())
    (tmp_path / "key.pem").write_bytes(tls.key.read_bytes())
    remote = [] if extra[0] == "--no-remote" else ["--allow-remote"]
    extra = [a for a in extra if a != "--no-remote"]
    result = subprocess.run(excap_command("station", "--sim", *remote, "--port", "0", "--out", "episodes", *extra),
                            capture_output=True, text=True, cwd=tmp_path, timeout=120)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("excap: error: ")
    assert message in lines[0]
    assert not (tmp_path / "episodes" / ".recording").exists()
