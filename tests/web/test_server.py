"""The one HTTP server (`excap.web.server.HttpServer`): address checks, binding errors, serving on a thread over real
loopback HTTP, and the station page and delivery API both running on it."""

import socket
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from excap.core.errors import ConfigError
from excap.web.guard import AllowedHosts, HostOriginGuard
from excap.web.server import HttpServer, ListenOptions, check_listen_address, is_loopback
from tests.support.tls import self_signed


def _guarded(hosts: AllowedHosts) -> HostOriginGuard:
    async def hello(_request: Request) -> JSONResponse:
        return JSONResponse({"hello": "excap"})

    return HostOriginGuard(Starlette(routes=[Route("/hello", hello)]), hosts, name="test")


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.0.1", "::1", "[::1]", "localhost"])
def test_loopback_names(host: str) -> None:
    assert is_loopback(host)
    check_listen_address(host, allow_remote=False)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "example.org", ""])
def test_other_addresses_need_allow_remote_and_the_refusal_says_what_and_why(host: str) -> None:
    assert not is_loopback(host)
    with pytest.raises(ConfigError, match=r"^refusing to serve the page on non-loopback address .* without "
                                          r"--allow-remote \(anyone can\)$"):
        check_listen_address(host, False, "serve the page", "anyone can")
    check_listen_address(host, allow_remote=True)


def test_a_non_loopback_host_is_refused_before_anything_is_bound() -> None:
    built: list[AllowedHosts] = []
    with pytest.raises(ConfigError, match="allow-remote"):
        HttpServer(ListenOptions(host="0.0.0.0"), lambda hosts: built.append(hosts) or _guarded(hosts), "test")
    assert built == []


def test_a_busy_port_is_a_one_line_config_error_naming_the_address() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=rf"^cannot listen on 127\.0\.0\.1:{port}: ") as caught:
            HttpServer(ListenOptions(port=port), _guarded, "test")
    assert "\n" not in str(caught.value)


def test_ssl_files_go_together(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--ssl-certfile and --ssl-keyfile go together"):
        HttpServer(ListenOptions(ssl_certfile=tmp_path / "cert.pem"), _guarded, "test")


def test_serves_the_guarded_app_on_a_thread_for_its_own_names_only() -> None:
    server = HttpServer(ListenOptions(port=0, allowed_hosts=("data.example.org",)), _guarded, "test")
    assert server.url.startswith("http://127.0.0.1:") and server.hosts.port == int(server.url.rsplit(":", 1)[1])
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            assert client.get("/hello").json() == {"hello": "excap"}
            assert client.get("/hello", headers={"Host": "data.example.org"}).status_code == 200
            assert client.get("/hello", headers={"Host": "evil.example"}).status_code == 421
    finally:
        server.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url + "/hello", timeout=2)
    server.stop()  # a second stop is harmless


def test_the_station_page_and_the_delivery_api_run_on_the_one_server() -> None:
    """Neither module binds sockets or sets up uvicorn itself."""
    from excap.delivery import serve
    from excap.station.web import app

    assert serve.HttpServer is HttpServer and app.HttpServer is HttpServer
    for module in (serve, app):
        assert not {"uvicorn", "socket", "bind", "ThreadedServer"} & set(vars(module)), module.__name__


def test_tls_files_that_do_not_load_are_refused_with_one_line_before_serving(tmp_path: Path) -> None:
    one, other = self_signed(tmp_path / "one"), self_signed(tmp_path / "other")
    for cert, key in ((one.cert, other.key), (one.cert, tmp_path / "missing.pem"), (one.key, one.key)):
        with pytest.raises(ConfigError, match=rf"^cannot use TLS certificate {cert} with key {key}: ") as caught:
            HttpServer(ListenOptions(port=0, ssl_certfile=cert, ssl_keyfile=key), _guarded, "test")
        assert "\n" not in str(caught.value)


def test_serves_https_with_its_certificate_and_guards_the_https_origin(tmp_path: Path) -> None:
    tls = self_signed(tmp_path)
    server = HttpServer(ListenOptions(port=0, ssl_certfile=tls.cert, ssl_keyfile=tls.key), _guarded, "test")
    assert server.url.startswith("https://127.0.0.1:") and server.hosts.scheme == "https"
    server.start()
    try:
        with httpx.Client(base_url=server.url, verify=tls.client_context(), timeout=10) as client:
            assert client.get("/hello").json() == {"hello": "excap"}
            plain_origin = server.url.replace("https://", "http://")
            assert client.post("/hello", headers={"Origin": plain_origin}).status_code == 403
        with pytest.raises(httpx.ConnectError):  # a client that does not trust the certificate
            httpx.get(server.url + "/hello", timeout=5)
    finally:
        server.stop()
