"""`excap serve`: the delivery API (`excap.delivery.api`) served over HTTP(S) by excap's one server
(`excap.web.server`), in the foreground (`serve`) or on a thread (`BackgroundServer`, for tests and embedding).

Layout of the served folder DIR: episodes anywhere outside hidden folders (as catalogued by
`excap.catalogue.index`), exported datasets in DIR/exports/<dataset>/, partners and grants in
DIR/.excap/partners.sqlite, and the access log DIR/.excap/access.log (JSON lines, bounded and rotated by size).
It listens on loopback unless remote access is allowed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from excap.core.errors import ConfigError
from excap.delivery.access_log import AccessLogOptions
from excap.delivery.api import DEFAULT_PORT, create_app
from excap.delivery.partner_videos import VideoQueue
from excap.web.guard import AllowedHosts, ASGIApp
from excap.web.server import HttpServer, ListenOptions

__all__ = ["BackgroundServer", "ServerOptions", "serve"]


@dataclass
class ServerOptions:
    root: Path
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    allow_remote: bool = False
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    allowed_hosts: tuple[str, ...] = ()  # further names clients use (NAME or NAME:PORT), e.g. behind a proxy
    access_log: AccessLogOptions = field(default_factory=AccessLogOptions)
    catalog: str | None = None  # the catalogue (excap.catalogue.store; default: EXCAP_CATALOG, else the folder's own)

    def listen(self) -> ListenOptions:
        return ListenOptions(self.host, self.port, self.allow_remote, self.allowed_hosts, self.ssl_certfile,
                             self.ssl_keyfile)

    def check(self) -> None:
        if not self.root.is_dir():
            raise ConfigError(f"{self.root}: no such folder")
        self.listen().check()


def _server(options: ServerOptions, videos: VideoQueue) -> HttpServer:
    options.check()

    def app_for(hosts: AllowedHosts) -> ASGIApp:
        return create_app(options.root, hosts, options.access_log, options.catalog, videos)

    return HttpServer(options.listen(), app_for, "delivery")


def serve(options: ServerOptions, on_listening: Callable[[str], None] | None = None) -> None:
    """Serves until interrupted (Ctrl-C / SIGTERM)."""
    videos = VideoQueue(options.root)
    server = _server(options, videos)
    if on_listening:
        on_listening(server.url)
    try:
        server.run()
    finally:
        videos.stop()


class BackgroundServer:
    """The API served by uvicorn on a thread (port 0: an ephemeral port), for tests and embedding."""

    def __init__(self, options: ServerOptions) -> None:
        self._videos = VideoQueue(options.root)
        self._server = _server(options, self._videos)
        self.url = self._server.url

    def start(self, timeout: float = 20.0) -> BackgroundServer:
        """Starts the thread and returns once uvicorn accepts connections."""
        self._server.start(timeout)
        return self

    def stop(self) -> None:
        self._server.stop()
        self._videos.stop()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
