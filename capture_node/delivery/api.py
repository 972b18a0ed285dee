"""The delivery API's routes: the datasets granted to a partner, their manifests and files, and the episodes they were
exported from (listed as the partner sees them, delivered as redacted copies). `create_app` wraps them in the Host
and origin guard, authentication and the access log.

Every request must name this server in its Host header and, if it changes anything, come from no other web page
(`excap.web.guard`); then it needs `Authorization: Bearer <token>` (401 otherwise, also for forged and
revoked tokens). A partner sees only the datasets granted to it and the episodes those datasets were exported
from (whatever their format: a robomimic export alone is enough); anything else, whether it exists or not, is 404.
An episode is listed with the SHA-256 and size of the file the partner downloads (its redacted copy), never of the
recorded file.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response

from excap.catalogue.index import EpisodeFilter, EpisodeRecord, select_episodes
from excap.core.errors import ConfigError, EpisodeError, ExcapError
from excap.core.state_dir import state_dir
from excap.delivery.access_log import ACCESS_LOG, AccessLog, AccessLogger, AccessLogOptions
from excap.delivery.auth import Authenticator
from excap.delivery.exports import contained, dataset_dir, dataset_files, export_episode_ids
from excap.delivery.file_response import NotFound, Sha256Cache, file_response
from excap.delivery.page import add_partner_page
from excap.delivery.partner_episodes import partner_episode, registry_of, scrubber_for
from excap.delivery.partner_videos import PENDING, VideoQueue, unavailable
from excap.delivery.partners import Partner, PartnerStore
from excap.delivery.signed_urls import signed_url, signing_key, video_path
from excap.web.guard import AllowedHosts, ASGIApp, HostOriginGuard

__all__ = ["DEFAULT_PORT", "EPISODE_FILTERS", "DeliveryService", "create_app", "partner_file_name"]

DEFAULT_PORT = 8750
EPISODE_FILTERS = ("machine_kind", "machine_model", "site", "task", "operator_id", "outcome", "since", "until",
                   "min_duration", "max_duration", "valid")
RETRY_AFTER_S = 5  # a review video being made: ask again after this long
BOOLEANS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}
_SAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]")

log = logging.getLogger("excap.serve")


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def partner_file_name(episode_id: str) -> str:
    """The name a partner sees for an episode file: its id, in plain characters (never the server's file name)."""
    return (_SAFE_FILENAME.sub("_", episode_id)[:200] or "episode") + ".h5"


@dataclass
class Listed:
    public: dict[str, Any]  # what the partner sees
    record: EpisodeRecord  # the catalogue's record (raw: server side only)


class DeliveryService:
    """What the endpoints need from the served folder, for one partner at a time."""

    def __init__(self, root: Path, catalog: str | None = None, videos: VideoQueue | None = None) -> None:
        self.root = Path(root)
        self.catalog = catalog  # the catalogue (excap.catalogue.store; default: the folder's own)
        self.hashes = Sha256Cache()
        self.videos = videos or VideoQueue(self.root)  # the server stops it (serve.py)
        self._catalogue_lock = threading.Lock()

    def datasets(self, partner: Partner) -> list[dict[str, Any]]:
        listed = []
        for name in partner.grants:
            folder = dataset_dir(self.root, name)
            if folder is None:
                continue
            files = list(dataset_files(folder))
            listed.append({"name": name, "files": len(files), "bytes": sum(_size(p) for _, p in files)})
        return listed

    def folder(self, partner: Partner, name: str) -> Path:
        folder = dataset_dir(self.root, name) if name in partner.grants else None
        if folder is None:
            raise NotFound("dataset")
        return folder

    def manifest(self, partner: Partner, name: str) -> dict[str, Any]:
        folder = self.folder(partner, name)
        files = []
        for relative, path in dataset_files(folder):
            try:
                files.append({"path": relative, "size": path.stat().st_size, "sha256": self.hashes.of_path(path)})
            except OSError:
                continue  # removed while listing
        return {"dataset": name, "files": files}

    def dataset_file(self, partner: Partner, name: str, relative: str) -> Path:
        path = contained(self.folder(partner, name), relative)
        if path is None or any(part.startswith(".") for part in relative.split("/")):
            raise NotFound("file")
        return path

    def listing(self, partner: Partner, query: dict[str, str]) -> list[Listed]:
        """Valid catalogued episodes matching the filters that were exported into one of the partner's datasets, as
        the partner sees them (`excap.datasets.redaction`): the operator as the partner's pseudonym (as in its
        exports, also when filtering), registered names scrubbed, no server paths. Unreadable or invalid files (e.g.
        damaged since the export) are left out."""
        unknown = sorted(set(query) - set(EPISODE_FILTERS) - {"dataset"})
        if unknown:
            shown = ", ".join(name[:40] for name in unknown[:5])
            raise HTTPException(400, f"unknown filter(s): {shown}; use {', '.join(EPISODE_FILTERS)}, dataset")
        query = dict(query)
        operator = query.pop("operator_id", None)
        dataset = query.pop("dataset", None)
        selection = _episode_filter(query)
        names = partner.grants
        if dataset is not None:
            self.folder(partner, dataset)
            names = [dataset]
        membership: dict[str, list[str]] = {}
        for name in names:
            folder = dataset_dir(self.root, name)
            for episode_id in export_episode_ids(folder) if folder else ():
                membership.setdefault(episode_id, []).append(name)
        if not membership:
            return []
        records = [r for r in self._records(selection) if r.episode_id in membership and r.valid]
        registry, _ = registry_of(self.root)
        scrub = scrubber_for(self.root, partner.name, registry, *(r.operator_id for r in records))
        listed = []
        for record in records:
            public = {**scrub.public_record(record), "file": partner_file_name(record.episode_id),
                      "datasets": membership[record.episode_id]}
            if operator is None or public["operator_id"] == operator:
                listed.append(Listed(public, record))
        return listed

    def episodes(self, partner: Partner, query: dict[str, str]) -> list[dict[str, Any]]:
        """The listing, each episode with the SHA-256 and size of the exact bytes the partner downloads: its
        redacted copy (made now if there is no current one; cached by content, see partner_episodes). An episode
        whose copy cannot be made is left out, as its download would fail."""
        episodes = []
        for item in self.listing(partner, query):
            if contained(self.root, item.record.path) is None:
                continue
            try:
                copy = partner_episode(self.root, partner.name, item.record.path, self.hashes.of_fd)
                sha256, size = self.hashes.of_path(copy), copy.stat().st_size
            except (EpisodeError, OSError) as exc:
                log.warning("episode not listed: %s", exc)
                continue
            public = {**item.public, "sha256": sha256, "size": size}
            video = self.videos.video(partner.name, copy, sha256) if unavailable() is None else None
            if isinstance(video, Path):
                with contextlib.suppress(OSError):  # replaced meanwhile: listed again next time
                    public["review_video"] = {"url": video_path(item.record.episode_id),
                                              "sha256": self.hashes.of_path(video), "size": video.stat().st_size}
            elif video == PENDING:
                public["review_video_pending"] = True
            episodes.append(public)
        return episodes

    def review_video(self, partner: Partner, episode_id: str) -> Path:
        """The partner's review video of an episode it may see: 404 with the reason when there is none, 503 with
        Retry-After while it is being made."""
        reason = unavailable()
        if reason is not None:
            raise HTTPException(404, reason)
        relative, _ = self.episode_file(partner, episode_id)
        copy = partner_episode(self.root, partner.name, relative, self.hashes.of_fd)
        video = self.videos.video(partner.name, copy, self.hashes.of_path(copy))
        if video == PENDING:
            raise HTTPException(503, "the review video is being made; ask again shortly",
                                headers={"Retry-After": str(RETRY_AFTER_S)})
        if not isinstance(video, Path):
            raise HTTPException(404, "this episode has no review video (nothing to show, or it cannot be rendered)")
        return video

    def episode_file(self, partner: Partner, episode_id: str) -> tuple[str, str]:
        """The episode's file (relative to the folder) and the name the partner sees."""
        for item in self.listing(partner, {}):
            if item.record.episode_id == episode_id and contained(self.root, item.record.path) is not None:
                return item.record.path, item.public["file"]
        raise NotFound("episode")

    def _records(self, selection: EpisodeFilter) -> list[EpisodeRecord]:
        with self._catalogue_lock:
            return select_episodes(self.root, selection, update=True, catalog=self.catalog)


def _episode_filter(query: dict[str, str]) -> EpisodeFilter:
    values: dict[str, Any] = {}
    try:
        for key in EPISODE_FILTERS:
            if key not in query:
                continue
            if key in ("min_duration", "max_duration"):
                values[key] = float(query[key]) if len(query[key]) <= 40 else float("nan")
            elif key == "valid":
                if query[key].lower() not in BOOLEANS:
                    raise ConfigError(f"valid must be one of {', '.join(BOOLEANS)}")
                values[key] = BOOLEANS[query[key].lower()]
            else:
                values[key] = query[key]
        return EpisodeFilter(**values).check()
    except (ValueError, ConfigError) as exc:
        raise HTTPException(400, f"bad filter value: {str(exc)[:200]}") from exc


def _problem(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


def create_app(root: Path, hosts: AllowedHosts | None = None, log_options: AccessLogOptions | None = None,
               catalog: str | None = None, videos: VideoQueue | None = None) -> ASGIApp:
    """The delivery API for folder `root`: Host and origin checks, authentication and access logging around it.
    `hosts`: the names the server answers to (default: loopback on DEFAULT_PORT); `catalog`: the catalogue to
    select the folder's episodes from (default: the folder's own); `videos`: where partner review videos are rendered
    (default: a queue of its own, whose thread ends with the process)."""
    root = Path(root)
    service = DeliveryService(root, catalog, videos)
    app = FastAPI(title="excap delivery", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(EpisodeError)
    async def undeliverable(_request: Request, exc: EpisodeError) -> JSONResponse:
        log.warning("episode not delivered: %s", exc)
        return _problem(422, "this episode's file cannot be read; it is left out until it is repaired")

    @app.exception_handler(ExcapError)
    async def misconfigured(_request: Request, exc: ExcapError) -> JSONResponse:
        log.error("delivery refused: %s", exc)
        return _problem(503, "the server cannot answer this now (its configuration needs attention)")

    def partner_of(request: Request) -> Partner:
        return request.state.partner

    @app.get("/v1/datasets")
    def list_datasets(request: Request) -> dict[str, Any]:
        return {"datasets": service.datasets(partner_of(request))}

    @app.get("/v1/datasets/{name}/manifest")
    def manifest(request: Request, name: str) -> dict[str, Any]:
        return service.manifest(partner_of(request), name)

    @app.api_route("/v1/datasets/{name}/files/{path:path}", methods=["GET", "HEAD"])
    def dataset_file(request: Request, name: str, path: str) -> Response:
        target = service.dataset_file(partner_of(request), name, path)
        return file_response(request, target, service.hashes)

    @app.get("/v1/episodes")
    def list_episodes(request: Request) -> dict[str, Any]:
        return {"episodes": service.episodes(partner_of(request), dict(request.query_params))}

    @app.api_route("/v1/episodes/{episode_id}", methods=["GET", "HEAD"])
    def episode(request: Request, episode_id: str) -> Response:
        partner = partner_of(request)
        relative, name = service.episode_file(partner, episode_id)
        target = partner_episode(root, partner.name, relative, service.hashes.of_fd)  # redacted copy
        return file_response(request, target, service.hashes, filename=name)

    @app.api_route("/v1/episodes/{episode_id}/review.mp4", methods=["GET", "HEAD"])
    def review_video(request: Request, episode_id: str) -> Response:
        target = service.review_video(partner_of(request), episode_id)
        return file_response(request, target, service.hashes, media_type="video/mp4")

    @app.get("/v1/episodes/{episode_id}/review-url")
    def review_url(request: Request, episode_id: str) -> JSONResponse:
        partner = partner_of(request)
        service.episode_file(partner, episode_id)  # 404 unless the partner may see the episode
        url, expires = signed_url(signing_key(root), partner.token_id, episode_id)
        return JSONResponse({"url": url, "expires": expires}, headers={"Cache-Control": "no-store"})

    add_partner_page(app)
    guarded = HostOriginGuard(Authenticator(app, PartnerStore(root), root), hosts or AllowedHosts.for_server(
        "127.0.0.1", DEFAULT_PORT), name="excap serve")
    return AccessLogger(guarded, AccessLog(state_dir(root) / ACCESS_LOG, log_options))
