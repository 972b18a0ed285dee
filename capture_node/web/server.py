"""The one HTTP server excap runs (station page, delivery API): an ASGI app served by uvicorn on a socket excap binds
itself, behind the Host and origin guard (`excap.web.guard`).

`HttpServer` does every step once: refuse a non-loopback address unless remote access is allowed, bind (a port of 0
picks a free port), work out the URL and the names the server answers to, build the guarded app for those names,
and run uvicorn on the socket, either in the foreground (`run`, until Ctrl-C or SIGTERM) or on a thread (`start` /
`stop`). uvicorn is imported only when a server is built, so `is_loopback` and `check_listen_address` are light.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from excap.core.errors import ConfigError, ExcapError
from excap.web.guard import is_loopback

if TYPE_CHECKING:
    import uvicorn

    from excap.web.guard import AllowedHosts, ASGIApp

__all__ = ["HttpServer", "ListenOptions", "ThreadedServer", "bind", "check_listen_address", "check_tls_files",
           "is_loopback", "server_url"]


def check_listen_address(host: str, allow_remote: bool, action: str = "listen", risk: str = "") -> None:
    """ConfigError unless `host` is loopback or remote access is allowed: `refusing to ACTION on non-loopback
    address 'HOST' without --allow-remote RISK`."""
    if not is_loopback(host) and not allow_remote:
        raise ConfigError(f"refusing to {action} on non-loopback address {host!r} without --allow-remote"
                          + (f" ({risk})" if risk else ""))


def check_tls_files(cert: Path, key: Path) -> None:
    """ConfigError (one line naming both files) unless the certificate and its key load as a TLS server's; checked
    before serving, since uvicorn would only fail on them in its own thread."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(str(cert), str(key))
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or exc
        raise ConfigError(f"cannot use TLS certificate {cert} with key {key}: {reason}") from None


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: a free port); OSError if the address is unusable."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    # IPPROTO_TCP spelled out: asyncio turns Nagle's algorithm off only on sockets that say they are TCP, and with it
    # on, every answer written in two parts (headers, body) waits ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def server_url(sock: socket.socket, scheme: str = "http") -> str:
    host, port = sock.getsockname()[:2]
    return f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}"


class ThreadedServer:
    """A uvicorn server running `config`'s app on `sock`, in a daemon thread."""

    def __init__(self, config: uvicorn.Config, sock: socket.socket, name: str) -> None:
        import uvicorn

        self._sock = sock
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, name=name,
                                        daemon=True)

    def start(self, timeout: float = 20.0) -> bool:
        """Start the thread; True once uvicorn accepts connections (False: it did not, and is stopped)."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        pause = threading.Event()
        while not self._server.started and self._thread.is_alive() and time.monotonic() < deadline:
            pause.wait(0.01)
        if not self._server.started:
            self.stop()
            return False
        return True

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=20.0)
        self._sock.close()


@dataclass(frozen=True)
class ListenOptions:
    """Where and how a server listens. `allowed_hosts`: further names clients use (NAME or NAME:PORT), e.g. behind a
    reverse proxy. `action` and `risk` word the refusal of a non-loopback host without `allow_remote`."""

    host: str = "127.0.0.1"
    port: int = 0
    allow_remote: bool = False
    allowed_hosts: tuple[str, ...] = ()
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    action: str = "listen"
    risk: str = ""

    @property
    def scheme(self) -> str:
        return "https" if self.ssl_certfile else "http"

    def check(self) -> None:
        check_listen_address(self.host, self.allow_remote, self.action, self.risk)
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ConfigError("--ssl-certfile and --ssl-keyfile go together")
        if self.ssl_certfile is not None and self.ssl_keyfile is not None:
            check_tls_files(self.ssl_certfile, self.ssl_keyfile)


class HttpServer:
    """An ASGI app on a socket bound here: `app_for(allowed_hosts)` builds the app (guarded by the caller with
    `excap.web.guard.HostOriginGuard` for those names) once the port is known. `name` names the server in errors
    and its thread. ConfigError for a refused or unusable address, before anything is served."""

    def __init__(self, options: ListenOptions, app_for: Callable[[AllowedHosts], ASGIApp], name: str) -> None:
        import uvicorn

        from excap.web.guard import AllowedHosts

        options.check()
        try:
            self._sock = bind(options.host, options.port)
        except OSError as exc:
            raise ConfigError(f"cannot listen on {options.host}:{options.port}: {exc.strerror or exc}") from exc
        self.name = name
        self.url = server_url(self._sock, options.scheme)
        self.hosts = AllowedHosts.for_server(options.host, self._sock.getsockname()[1], options.allowed_hosts,
                                             options.scheme)
        try:
            self.app = app_for(self.hosts)
        except BaseException:
            self._sock.close()
            raise
        self._config = uvicorn.Config(
            self.app, log_level="warning", access_log=False, server_header=False, lifespan="off",
            ssl_certfile=str(options.ssl_certfile) if options.ssl_certfile else None,
            ssl_keyfile=str(options.ssl_keyfile) if options.ssl_keyfile else None)
        self._thread: ThreadedServer | None = None

    def run(self) -> None:
        """Serve in this thread until interrupted (Ctrl-C / SIGTERM); the socket is closed afterwards."""
        import uvicorn

        try:
            uvicorn.Server(self._config).run(sockets=[self._sock])
        finally:
            self._sock.close()

    def start(self, timeout: float = 20.0) -> None:
        """Serve on a daemon thread; returns once uvicorn accepts connections (ExcapError if it did not)."""
        self._thread = ThreadedServer(self._config, self._sock, self.name)
        if not self._thread.start(timeout):
            raise ExcapError(f"the {self.name} server did not start")

    def stop(self) -> None:
        """Stop serving (thread) and close the socket; harmless when never started or already stopped."""
        if self._thread is not None:
            self._thread.stop()
        self._sock.close()
