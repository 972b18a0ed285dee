"""The one HTTP server excap runs, for the station page and the delivery API: `HttpServer` binds the socket
itself (loopback unless remote access is allowed), runs uvicorn on it in the foreground or on a thread, and
`HostOriginGuard` refuses requests for foreign Host names, from other web pages, and over-large bodies.

Public names are imported on first use (`excap.core.lazy_exports`): importing the package, or any
module in it, imports nothing else.
"""

from typing import TYPE_CHECKING

from excap.core.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from excap.web.guard import AllowedHosts, HostOriginGuard, check_request, is_loopback
    from excap.web.server import HttpServer, ListenOptions, check_listen_address

__all__ = ["AllowedHosts", "HostOriginGuard", "HttpServer", "ListenOptions", "check_listen_address", "check_request",
           "is_loopback"]

__getattr__, __dir__ = lazy_exports(__name__, __all__, {
    "excap.web.guard": ["AllowedHosts", "HostOriginGuard", "check_request", "is_loopback"],
    "excap.web.server": ["HttpServer", "ListenOptions", "check_listen_address"],
})
