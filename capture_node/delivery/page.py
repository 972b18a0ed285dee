"""The partner page: `GET /` (also `/partner`) and its script, plain files shipped in `static/`.

The files hold no data: the page asks the API for the partner's datasets and episodes with the token typed into it
(kept in sessionStorage only), and plays each episode's review video through a short-lived signed URL
(`excap.delivery.signed_urls`). Content-Security-Policy lets the page load only its own script and media.
"""

from __future__ import annotations

from importlib import resources

from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse, Response

STATIC = {"partner.js": "text/javascript", "partner.css": "text/css"}
HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                                "media-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; "
                                "frame-ancestors 'none'"),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def _static(name: str) -> str:
    return resources.files("excap.delivery").joinpath("static", name).read_text(encoding="utf-8")


def add_partner_page(app: FastAPI) -> None:
    @app.api_route("/", methods=["GET", "HEAD"], response_class=HTMLResponse)
    @app.api_route("/partner", methods=["GET", "HEAD"], response_class=HTMLResponse)
    def page() -> HTMLResponse:
        return HTMLResponse(_static("partner.html"), headers=HEADERS)

    @app.api_route("/static/partner/{name}", methods=["GET", "HEAD"])
    def static(name: str) -> Response:
        if name not in STATIC:
            raise HTTPException(404, "no such file")
        return Response(_static(name), media_type=STATIC[name], headers=HEADERS)
