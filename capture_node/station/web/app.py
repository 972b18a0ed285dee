"""The operator station's local web page and its JSON API (FastAPI), served on loopback by default.

`GET /` the page (plain HTML/JS/CSS from `static/`), `GET /api/status` everything the page shows, `GET|POST
/api/session` the session form (operator, site, task, notes) and the operator's certification, `POST /api/start`
(`{"override": true}`: even if required devices are not ready), `/api/stop {outcome}`, `/api/discard`, `/api/mark
{label}` the actions (409 with the reason when refused), `GET /api/camera/<name>.jpg` the camera's latest JPEG.
`GET /api/episodes/recent` and `POST /api/label` the last episodes and their labels. `StationServer` runs it on a
thread.

Other web pages the operator's browser opens must not drive the station: the server answers only requests whose
Host names it (DNS rebinding), refuses state-changing requests from any other origin, and takes them only with a
JSON body, which an HTML form cannot send (`excap.web.guard`). Served to the network (`allow_remote`), it speaks
HTTPS only and every request needs a logged-in user's session, CSRF token and role (`excap.station.web.auth`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from importlib import resources
from typing import Any

from fastapi import Body, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

from excap.core.errors import ConfigError, ExcapError
from excap.people.certification import policy_of
from excap.station.bindings import StationBindings
from excap.station.control import ActionResult, StationController
from excap.station.status import StationMonitor, station_status
from excap.station.web.auth import PERMISSIONS, AuthGate, RemoteAccess, StationAuth
from excap.web.guard import AllowedHosts, HostOriginGuard
from excap.web.server import HttpServer, ListenOptions, check_listen_address

NO_CACHE = {"Cache-Control": "no-store"}
STATIC = {"station.js": "text/javascript", "station.css": "text/css", "station_episodes.js": "text/javascript"}
OUTCOMES = ("success", "failure")


@dataclass
class Station:
    """What the page shows and acts on."""

    controller: StationController
    monitor: StationMonitor
    bindings: StationBindings | None = None
    last_poll: float = 0.0  # monotonic time of the page's last status request

    @property
    def runtime(self) -> Any:
        return self.controller.runtime

    def status(self) -> dict[str, Any]:
        return station_status(self.runtime, self.controller, self.monitor, self.bindings)


def _static(name: str) -> str:
    return resources.files("excap.station.web").joinpath("static", name).read_text(encoding="utf-8")


def _result(result: ActionResult) -> JSONResponse:
    return JSONResponse(asdict(result), status_code=200 if result.ok else 409, headers=NO_CACHE)


def _session(station: Station) -> dict[str, Any]:
    check = station.controller.certification()
    config = station.runtime.config
    registry_ops: list[str] = []
    from excap.station.certification import station_registry

    registry, problem = station_registry(config)
    if registry is not None:
        registry_ops = sorted(registry.operators)
    return {"session": dict(station.controller.session),
            "machine": {"id": config.machine_id, "kind": config.profile.kind, "model": config.profile.model},
            "policy": policy_of(config.session),
            "certification": {"allowed": check.allowed, "message": check.message,
                              "certified": bool(check.status and check.status.certified),
                              "value": check.metadata.get("certification", "")},
            "operators": registry_ops, "registry_problem": problem}


def create_app(station: Station) -> FastAPI:
    app = FastAPI(title="excap station", docs_url=None, redoc_url=None, openapi_url=None)
    controller = station.controller

    @app.get("/", response_class=HTMLResponse)
    def page() -> HTMLResponse:
        return HTMLResponse(_static("index.html"), headers=NO_CACHE)

    @app.get("/static/{name}")
    def static(name: str) -> Response:
        if name not in STATIC:
            raise HTTPException(404, "no such file")
        return Response(_static(name), media_type=STATIC[name], headers=NO_CACHE)

    @app.get("/api/status")
    def status() -> JSONResponse:
        station.last_poll = time.monotonic()
        return JSONResponse(station.status(), headers=NO_CACHE)

    @app.get("/api/session")
    def get_session() -> JSONResponse:
        return JSONResponse(_session(station), headers=NO_CACHE)

    @app.post("/api/session")
    def set_session(values: dict[str, Any] = Body(default_factory=dict)) -> JSONResponse:  # noqa: B008
        try:
            controller.update_session(values)
        except ExcapError as exc:
            raise HTTPException(400, str(exc)) from exc
        return JSONResponse(_session(station), headers=NO_CACHE)

    @app.post("/api/start")
    def start(request: Request, values: dict[str, Any] = Body(default_factory=dict)) -> JSONResponse:  # noqa: B008
        values = dict(values)
        override = values.pop("override", False)
        if not isinstance(override, bool):
            raise HTTPException(400, f"override must be true or false, not {override!r}")
        role = getattr(request.state, "role", None)  # a logged-in user's (remote access); None on loopback
        if override and role is not None and "administer" not in PERMISSIONS[role]:
            raise HTTPException(403, f"the {role} role may not start with required devices not ready (administer)")
        if values:
            try:
                controller.update_session(values)
            except ExcapError as exc:
                raise HTTPException(400, str(exc)) from exc
        return _result(controller.act("start", "page", override=override))

    @app.post("/api/stop")
    def stop(body: dict[str, Any] = Body(default_factory=dict)) -> JSONResponse:  # noqa: B008
        outcome = body.get("outcome") or ""
        if outcome and outcome not in OUTCOMES:
            raise HTTPException(400, f"outcome must be one of {', '.join(OUTCOMES)}, not {outcome!r}")
        return _result(controller.act(outcome or "stop", "page"))

    @app.post("/api/discard")
    def discard() -> JSONResponse:
        return _result(controller.act("discard", "page"))

    @app.post("/api/mark")
    def mark(body: dict[str, Any] = Body(default_factory=dict)) -> JSONResponse:  # noqa: B008
        return _result(controller.act("marker", "page", str(body.get("label") or "")))

    add_episode_routes(app, station)

    @app.get("/api/camera/{name}.jpg")
    def camera(name: str) -> Response:
        frame = station.runtime.latest_frame(name)
        if frame is None:
            raise HTTPException(404, f"no frame from camera {name!r} yet")
        return Response(frame.jpeg, media_type="image/jpeg",
                        headers={**NO_CACHE, "X-Frame-T-Ns": str(frame.t_ns)})

    return app


def add_episode_routes(app: FastAPI, station: Station) -> None:
    """`GET /api/episodes/recent` the last episodes of the station's folder (id, file, start, duration, recorded
    outcome, label); `POST /api/label {"episode": id, "outcome": "success"|"failure"}` labels one of them, by the
    session's operator from the station page (400 bad outcome, 404 no such episode); `GET
    /api/episodes/{id}/review.mp4` an episode's review video (`<file>.mp4` beside it), with HTTP Range for the
    page's `<video>` (404 when it has none)."""
    from excap.episode.labels import LABEL_OUTCOMES
    from excap.station.episodes import EpisodeNotFound, find_episode, label_by_id, recent_episodes, review_video

    @app.get("/api/episodes/{episode_id}/review.mp4")
    def review(episode_id: str) -> FileResponse:
        try:
            video = review_video(find_episode(station.runtime.config.out_dir, episode_id))
        except EpisodeNotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        if video is None:
            raise HTTPException(404, f"episode {episode_id!r} has no review video (excap render)")
        return FileResponse(video, media_type="video/mp4")

    @app.get("/api/episodes/recent")
    def recent() -> JSONResponse:
        episodes = recent_episodes(station.runtime.config.out_dir)
        return JSONResponse({"episodes": [e.as_json() for e in episodes]}, headers=NO_CACHE)

    @app.post("/api/label")
    def label(request: Request, body: dict[str, Any] = Body(default_factory=dict)) -> JSONResponse:  # noqa: B008
        episode, outcome = body.get("episode"), body.get("outcome")
        if not isinstance(episode, str) or not episode:
            raise HTTPException(400, "episode: the id of a finished episode is required")
        if outcome not in LABEL_OUTCOMES:
            raise HTTPException(400, f"outcome must be one of {', '.join(LABEL_OUTCOMES)}, not {outcome!r}")
        operator = getattr(request.state, "user", None) or station.controller.session.get("operator", "")
        by = operator if operator and operator != "anonymous" else "station page"
        try:
            path, done = label_by_id(station.runtime.config.out_dir, episode, str(outcome), by=by, source="page")
        except EpisodeNotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        except ExcapError as exc:
            raise HTTPException(409, str(exc)) from exc
        text = f"{path.name}: outcome {done.outcome}" + (f" (was {done.previous})" if done.previous else "")
        station.controller.note(text, source="page")
        return JSONResponse({"ok": True, "message": text, "episode": episode, "file": path.name, **done.as_json()},
                            headers=NO_CACHE)


REMOTE_RISK = "anyone who reaches it can start and stop recordings"
REMOTE_NEEDS = ("--allow-remote needs --tls-cert FILE and --tls-key FILE: a station served to the network takes "
                "logins and commands over HTTPS only")


def check_host(host: str, allow_remote: bool, remote: RemoteAccess | None = None) -> None:
    """ConfigError for a non-loopback page address without `allow_remote`, or remote access without TLS and users
    (checked before any device opens)."""
    check_listen_address(host, allow_remote, "serve the station page", REMOTE_RISK)
    if allow_remote:
        if remote is None:
            raise ConfigError(REMOTE_NEEDS)
        remote.check()


def guarded_app(station: Station, hosts: AllowedHosts, auth: StationAuth | None = None) -> HostOriginGuard:
    """The station app behind the login gate (remote access only) and the Host, origin and JSON checks."""
    return HostOriginGuard(AuthGate(create_app(station), auth), hosts, require_json=True, name="excap station")


class StationServer:
    """The page and API served on a thread by `excap.web.server.HttpServer`; port 0 picks a free port.
    `allow_remote` needs `remote`: HTTPS with its certificate, logins of its users, and the further names (NAME or
    NAME:PORT) browsers use to reach the station."""

    def __init__(self, station: Station, host: str = "127.0.0.1", port: int = 0, allow_remote: bool = False,
                 remote: RemoteAccess | None = None) -> None:
        check_host(host, allow_remote, remote)
        self.auth = StationAuth(remote.auth) if allow_remote and remote is not None else None
        options = ListenOptions(host, port, allow_remote, remote.allowed_hosts if remote else (),
                                remote.tls_cert if remote else None, remote.tls_key if remote else None,
                                action="serve the station page", risk=REMOTE_RISK)
        guards: list[HostOriginGuard] = []

        def app_for(hosts: AllowedHosts) -> HostOriginGuard:
            guards.append(guarded_app(station, hosts, self.auth))
            return guards[0]

        self._server = HttpServer(options, app_for, "station page")
        self.url = self._server.url
        self.guard = guards[0]  # its refusal counts

    def start(self, timeout: float = 20.0) -> StationServer:
        self._server.start(timeout)
        return self

    def stop(self) -> None:
        self._server.stop()
