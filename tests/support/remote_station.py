"""A simulated station served with remote access (HTTPS, logins) on loopback, and an HTTPS client that logs in."""

from dataclasses import dataclass, field
from pathlib import Path

import httpx

from excap.station.app import RunningStation
from excap.station.config import load_station_config
from excap.station.status import StatusThresholds
from excap.station.users import add_user, users_path
from excap.station.web.auth import AuthSettings, RemoteAccess, StationAuth
from tests.support.station import Console, StationFixture, station_yaml
from tests.support.tls import TlsFiles, self_signed

PASSWORDS = {"olga": "operator-pass-1", "lena": "site-lead-pass-1"}
ROLES = {"olga": "operator", "lena": "site_lead"}


@dataclass
class RemoteStation:
    fixture: StationFixture
    tls: TlsFiles
    users_file: Path

    @property
    def url(self) -> str:
        return self.fixture.url

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def auth(self) -> StationAuth:
        assert self.fixture.running.server is not None and self.fixture.running.server.auth is not None
        return self.fixture.running.server.auth

    def client(self) -> "Client":
        return Client(self)


@dataclass
class Client:
    """One browser-like HTTPS client: its own cookie jar, and the CSRF token of its login."""

    station: RemoteStation
    csrf: str = ""
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.station.url, verify=self.station.tls.client_context(), timeout=30)

    def login(self, user: str, password: str | None = None) -> httpx.Response:
        answer = self.http.post("/api/login", json={"user": user, "password": PASSWORDS.get(user, "")
                                                     if password is None else password})
        if answer.status_code == 200:
            self.csrf = answer.json()["csrf"]
        return answer

    def get(self, path: str, **options: object) -> httpx.Response:
        return self.http.get(path, **options)  # type: ignore[arg-type]

    def post(self, path: str, body: dict | None = None, csrf: str | None = None,
             headers: dict[str, str] | None = None) -> httpx.Response:
        token = self.csrf if csrf is None else csrf
        sent = {**({"X-CSRF-Token": token} if token else {}), **(headers or {})}
        return self.http.post(path, json=body or {}, headers=sent)

    def close(self) -> None:
        self.http.close()


def start_remote_station(tmp_path: Path, port: str, console: Console, policy: str = "refuse",
                         operator: str = "op-1", **auth: float) -> RemoteStation:
    """A station on 127.0.0.1 with `allow_remote`, its own certificate, and the users olga (operator) and lena
    (site lead); `auth` overrides AuthSettings (tiny timeouts for the tests)."""
    config = load_station_config(station_yaml(tmp_path, port, policy, operator))
    users = users_path(config.out_dir)
    for name, role in ROLES.items():
        add_user(users, name, role, PASSWORDS[name])
    tls = self_signed(tmp_path / "tls")
    remote = RemoteAccess(tls.cert, tls.key, AuthSettings(users, **auth))  # type: ignore[arg-type]
    running = RunningStation.start(config, StatusThresholds(stale_after_s=0.5), host="127.0.0.1", port=0,
                                   allow_remote=True, remote=remote)
    return RemoteStation(StationFixture(running, console, config.out_dir), tls, users)
