"""Which Host, Origin and Content-Type headers the HTTP guard lets through (both servers are tested end to end in
tests/delivery/test_serve_hostile.py and tests/station/web/test_station_guard.py)."""

import socket

import pytest

from excap.web.guard import AllowedHosts, check_request, split_authority


def scope(method: str = "GET", **headers: str) -> dict:
    return {"type": "http", "method": method,
            "headers": [(k.replace("_", "-").lower().encode(), v.encode("utf-8")) for k, v in headers.items()]}


LOOPBACK = AllowedHosts.for_server("127.0.0.1", 8760)


@pytest.mark.parametrize("host", ["127.0.0.1:8760", "localhost:8760", "LocalHost:8760", "[::1]:8760"])
def test_loopback_server_answers_to_its_own_names(host: str) -> None:
    assert LOOPBACK.allows(host)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.1:8761", "evil.example:8760", "localhost.:8760",
                                  "127.0.0.1:8760.evil.example", "user@127.0.0.1:8760", "127.0.0.1:08760x",
                                  "[::1", "::1:8760", "127.0.0.1:٨٧٦٠", "", "a" * 400, "127.0.0.1:8760/x",
                                  f"{socket.gethostname()}:8760"])
def test_loopback_server_refuses_other_names(host: str) -> None:
    assert not LOOPBACK.allows(host)
    assert check_request(scope(host=host), LOOPBACK, require_json=False).status == 421


def test_remote_server_names() -> None:
    wildcard = AllowedHosts.for_server("0.0.0.0", 8750, extra=["data.example.org", "proxy.example.org:443"])
    assert wildcard.allows("192.0.2.7:8750") and wildcard.allows("[2001:db8::1]:8750")  # an address of this machine
    assert wildcard.allows(f"{socket.gethostname()}:8750") and wildcard.allows("127.0.0.1:8750")
    assert wildcard.allows("data.example.org") and wildcard.allows("data.example.org:9999")
    assert wildcard.allows("proxy.example.org:443") and not wildcard.allows("proxy.example.org:80")
    assert not wildcard.allows("evil.example:8750") and not wildcard.allows("192.0.2.7:8751")
    https = AllowedHosts.for_server("0.0.0.0", 443, scheme="https")
    assert https.allows("192.0.2.7") and not https.allows("192.0.2.7:80")
    assert split_authority("[::1]:80", 0) == ("[::1]", 80)
    assert split_authority("Example.ORG", 443) == ("example.org", 443)


def test_state_changing_requests_need_the_own_origin_and_json() -> None:
    own = {"host": "127.0.0.1:8760"}
    json_type = {"content_type": "application/json; charset=utf-8"}
    assert check_request(scope("POST", **own, origin="http://127.0.0.1:8760", **json_type), LOOPBACK, True) is None
    assert check_request(scope("POST", **own, **json_type), LOOPBACK, True) is None  # curl, scripts
    assert check_request(scope("POST", **own, referer="http://127.0.0.1:8760/", **json_type), LOOPBACK, True) is None
    assert check_request(scope("POST", **own, sec_fetch_site="same-origin", **json_type), LOOPBACK, True) is None
    for headers in ({"origin": "http://evil.example"}, {"origin": "null"}, {"origin": "http://localhost:8760"},
                    {"origin": "http://127.0.0.1:8761"}, {"origin": "https://127.0.0.1:8760"},
                    {"origin": "http://127.0.0.1:8760@evil.example"}, {"referer": "http://evil.example/x"},
                    {"referer": "not a url"}, {"sec_fetch_site": "cross-site"}, {"sec_fetch_site": "same-site"}):
        for method in ("POST", "PUT", "PATCH", "DELETE", "PROPFIND"):
            refusal = check_request(scope(method, **own, **headers, **json_type), LOOPBACK, True)
            assert refusal is not None and refusal.status == 403, (method, headers)
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""):
        refusal = check_request(scope("POST", **own, content_type=content_type), LOOPBACK, True)
        assert refusal is not None and refusal.status == 415, content_type
    assert check_request(scope("POST", **own, content_type="text/plain"), LOOPBACK, False) is None
    for method in ("GET", "HEAD", "OPTIONS"):  # reading is never refused for its origin
        assert check_request(scope(method, **own, origin="http://evil.example"), LOOPBACK, True) is None


@pytest.fixture(scope="module")
def guarded_server():
    """A real uvicorn server on loopback behind the guard; its app echoes the body's length and never reads it
    for /early (answering before the body is read, as a refusal would)."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from excap.web.guard import HostOriginGuard
    from excap.web.server import ThreadedServer, bind

    async def echo(request: Request) -> JSONResponse:
        return JSONResponse({"length": len(await request.body())})

    async def early(_request: Request) -> JSONResponse:
        return JSONResponse({"early": True}, status_code=409)

    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    app = Starlette(routes=[Route("/echo", echo, methods=["POST"]), Route("/early", early, methods=["POST"])])
    guard = HostOriginGuard(app, AllowedHosts.for_server("127.0.0.1", port), require_json=True)
    server = ThreadedServer(uvicorn.Config(guard, log_level="warning", lifespan="off"), sock, "guard-test")
    assert server.start()
    yield port
    server.stop()


def _post(port: int, path: str, body: bytes, content_type: str = "application/json") -> tuple[int, bytes]:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("POST", path, body, {"Host": f"127.0.0.1:{port}", "Content-Type": content_type})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_the_app_still_receives_the_whole_body(guarded_server: int) -> None:
    status, body = _post(guarded_server, "/echo", b"[" + b"1," * 200_000 + b"1]")
    assert (status, body) == (200, b'{"length":400003}')


def test_early_answers_and_refusals_arrive_even_with_a_large_unread_body(guarded_server: int) -> None:
    for _ in range(20):  # an unread body at close would make the kernel reset the connection: the answer lost
        assert _post(guarded_server, "/early", b"x" * 900_000)[0] == 409
        assert _post(guarded_server, "/echo", b"x" * 900_000, "text/plain")[0] == 415


def test_a_body_over_the_limit_is_refused_with_413(guarded_server: int) -> None:
    from excap.web.guard import MAX_BODY_BYTES

    status, body = _post(guarded_server, "/echo", b"x" * (MAX_BODY_BYTES + 1))
    assert status == 413 and b"request body over" in body
