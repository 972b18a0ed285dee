"""Nothing that names a person reaches a partner.

A station records real episodes (simulated machine, a camera reading a video file, the operator's certificate
checked against the registry) for operators with distinctive identities: ids, names, certificate numbers, an
e-mail address, notes and marker labels that mention other people, annotations stored under a login name. They
are indexed, exported (LeRobot and robomimic, for one partner) and served; then every byte that partner can
receive (listings, manifests, every dataset file, every episode download, headers, error answers) is searched for
every identity in every spelling; also for a second partner granted only the robomimic export. The listing gives
the SHA-256 and size of the bytes each download delivers.
"""

import hashlib
import json
import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import h5py
import httpx
import numpy as np
import pytest
import yaml

from excap.core.state_dir import DIR_MODE, FILE_MODE
from excap.datasets.redaction import Identities, Scrubber, write_redacted
from excap.delivery.access_log import AccessLogOptions
from excap.delivery.partners import PartnerStore
from excap.delivery.serve import BackgroundServer, ServerOptions
from excap.episode.validation import validate_episode
from excap.station.app import RunningStation
from excap.station.config import load_station_config
from excap.station.episodes import label_by_id
from tests.support.commands import excap_command
from tests.support.loader_episodes import LoaderEpisodes
from tests.support.mp4 import video_stream
from tests.support.paths import REPO
from tests.support.privacy import identities_in
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow

LOGIN = "jdoe_login42"  # the engineer's login name, stored as the annotation author
SUPERVISOR = "Ingrid Falkenrath"  # named in notes and an annotation's reason; in no registry
HELPER = "Piotr Wiśniewski"  # named in a marker label; in no registry
REVIEWER = "Hanne Sørbø-Kvist"  # labels outcomes after recording (`excap label --by`); in no registry
STATION_LOGIN = "sitelead_mkowalczyk"  # a station user's login name, recorded by a label from the station page


@dataclass(frozen=True)
class Person:
    operator_id: str
    name: str
    certificate: str
    email: str
    consent: bool


ANNA = Person("op-7f3k-ANNA", "Zoë Ångström-Quaresma", "CPCS-558812-ZQ", "zoe.angstrom@example.org", True)
BERT = Person("op-9x2m-BERT", "Bertrand Olufsen", "CPCS-771204-BO", "b.olufsen@example.org", True)
CLEO = Person("op-5c1d-CLEO", "Cleo Viljanen", "CPCS-330019-CV", "cleo.v@example.org", False)
PEOPLE = (ANNA, BERT, CLEO)

SESSIONS = {  # what was typed into the station's session form, and the marker label
    ANNA: ({"notes": f"good run; {SUPERVISOR} watched Zoë", "task": "dig-and-load", "site": "north pit"},
           f"checked by {HELPER}"),
    # registered identities typed into fields partners do see: scrubbed, not dropped by the allow-list
    BERT: ({"notes": "second run", "task": f"trench for {BERT.name}", "site": f"pit of {BERT.operator_id}"},
           "bucket full"),
    CLEO: ({"notes": f"{CLEO.name} trained by {SUPERVISOR}", "task": "dig-and-load", "site": "north pit"},
           f"{HELPER} took over"),
}
FREE_TEXT_ONLY = {ANNA, CLEO}  # their identities appear only where the allow-list itself must remove them


def identities(*people: Person) -> list[str]:
    texts = [LOGIN, STATION_LOGIN, SUPERVISOR, HELPER, "Falkenrath", "Wiśniewski", REVIEWER, "Sørbø-Kvist"]
    for person in people:
        texts += [person.operator_id, person.name, person.certificate, person.email, person.name.split()[-1]]
    return texts


def registry_yaml() -> str:
    return yaml.safe_dump({"operators": [{
        "operator_id": p.operator_id, "display_name": p.name, "email": p.email,
        "consent_to_share": p.consent, "consent_date": "2026-01-15" if p.consent else None,
        "certificates": [{"kind": "cpcs-a59", "machine_kinds": ["excavator"], "expiry": "2099-12-31",
                          "ref": p.certificate}],
    } for p in PEOPLE]}, allow_unicode=True)


def station_yaml(site: Path, private: Path) -> Path:
    dbc = private / "machine.dbc"  # a DBC kept in the engineer's home folder: its path names the login
    shutil.copyfile(REPO / "schemas" / "can" / "excavator_j1939.dbc", dbc)
    video = private / "side.avi"  # a camera reading a video file in the engineer's home folder
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (160, 120))
    for index in range(300):
        writer.write(np.full((120, 160, 3), (index * 8) % 256, np.uint8))
    writer.release()
    path = private / "station.yaml"
    path.write_text(yaml.safe_dump({
        "schema": "excap.station", "schema_version": 1,
        "station": {"id": "privacy-station", "out_dir": str(site)},
        "machine": {"profile": "excavator_20t", "pattern": "iso", "id": "exc-07", "simulated": True},
        "session": {"operator": ANNA.operator_id, "site": "north pit", "task": "dig-and-load",
                    "certification_policy": "refuse"},
        "joysticks": [{"name": "operator", "type": "sim",
                       "axes": ["left_x", "left_y", "right_x", "right_y", "travel_left", "travel_right"],
                       "buttons": ["enable", "horn", "marker"]}],
        "inputs": {"axes": {a: f"operator.{a}" for a in ("left_x", "left_y", "right_x", "right_y", "travel_left",
                                                         "travel_right")},
                   "buttons": {b: f"operator.{b}" for b in ("enable", "horn", "marker")}},
        "can": [{"name": "can0", "interface": "virtual", "channel": f"excap-privacy-{uuid.uuid4().hex}",
                 "dbc": str(dbc)}],
        "cameras": [{"name": "side", "source": str(video), "width": 160, "height": 120, "fps": 10}],
        "command": {"bus": "can0"},
    }))
    return path


def record(site: Path, private: Path) -> dict[Person, Path]:
    running = RunningStation.start(load_station_config(station_yaml(site, private)), host=None)
    controller = running.station.controller
    episodes = {}
    try:
        for person in PEOPLE:
            session, label = SESSIONS[person]
            controller.update_session({"operator": person.operator_id, **session})
            started = controller.act("start", "page")
            assert started.ok, started.message
            wait_for(lambda: controller.recording_state()["elapsed_s"] > 0.6, message="recording")
            assert controller.act("marker", "page", label).ok
            running.runtime.recorder.update_metadata(notes=f"{session['notes']} (edited by {person.name})")
            wait_for(lambda: controller.recording_state()["elapsed_s"] > 1.5, message="recording longer")
            stopped = controller.act("success", "page")
            assert stopped.ok, stopped.message
            episodes[person] = Path(stopped.path)
    finally:
        running.stop()
    return episodes


def excap(*args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(excap_command(*args), capture_output=True, text=True, timeout=300, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})
    assert result.returncode == 0, result.stderr
    return result.stdout


@dataclass
class Received:
    """Everything the partner received: what was asked -> (status line and headers, body)."""

    parts: dict[str, tuple[bytes, bytes]] = field(default_factory=dict)

    def add(self, what: str, response: httpx.Response) -> httpx.Response:
        head = f"{response.http_version} {response.status_code} {response.reason_phrase}\n"
        head += "".join(f"{k}: {v}\n" for k, v in response.headers.items())
        self.parts[what] = (head.encode("utf-8"), response.content)
        return response

    def body(self, what: str) -> bytes:
        return self.parts[what][1]

    def leaks(self, texts: list[str]) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for what, (head, body) in self.parts.items():
            for identity in identities_in(head + body, texts):
                found.setdefault(identity, []).append(what)
        return found


def with_videos(response: httpx.Response) -> list[dict] | None:
    """The listing once every episode's review video is made (they are rendered on the server's thread)."""
    episodes = response.json()["episodes"]
    return episodes if episodes and all("review_video" in e for e in episodes) else None


@dataclass
class PrivacySite:
    root: Path
    episodes: dict[Person, Path]
    received: Received
    listing: list[dict]
    robomimic_listing: list[dict]  # what the partner granted only the robomimic export was listed


@pytest.fixture(scope="module")
def privacy_site(tmp_path_factory: pytest.TempPathFactory) -> PrivacySite:
    base = tmp_path_factory.mktemp("privacy")
    root, private = base / "site", base / "home" / LOGIN
    root.mkdir()
    private.mkdir(parents=True)
    (root / ".excap").mkdir(mode=0o755)
    (root / ".excap" / "operators.yaml").write_text(registry_yaml(), encoding="utf-8")
    os.chmod(root / ".excap" / "operators.yaml", 0o644)  # as a careless editor leaves it
    episodes = record(root, private)
    login = {"LOGNAME": LOGIN, "USER": LOGIN}
    excap("annotate", str(episodes[ANNA]), "--reject", "--reason", f"re-check with {SUPERVISOR}", env=login)
    for person in (BERT, CLEO):
        excap("annotate", str(episodes[person]), "--accept", env=login)
    for person in (ANNA, BERT):  # labels by a named reviewer, with notes naming people
        excap("label", str(episodes[person]), "--outcome", "success", "--by", REVIEWER,
              "--note", f"confirmed with {SUPERVISOR}")
    excap("label", str(episodes[CLEO]), "--outcome", "success", "--note", f"{HELPER} agrees", env=login)  # by LOGIN
    label_by_id(root, episodes[BERT].stem, "success", by=STATION_LOGIN)  # as the station page labels for its user
    excap("index", str(root))
    excap("export", str(root), "--format", "lerobot", "--out", str(root / "exports" / "dig-lerobot"),
          "--partner", "acme", "--fps", "5", "--no-progress")
    excap("export", str(root), "--format", "robomimic", "--out", str(root / "exports" / "dig-robomimic" / "dig.hdf5"),
          "--partner", "acme", "--fps", "5", "--no-progress")
    store = PartnerStore(root)
    token = store.add("acme")
    store.grant("acme", "dig-lerobot")
    store.grant("acme", "dig-robomimic")
    robomimic_token = store.add("robomimic-only")
    store.grant("robomimic-only", "dig-robomimic")

    received = Received()
    options = ServerOptions(root=root, port=0, access_log=AccessLogOptions(refused_burst=10_000))
    with BackgroundServer(options) as server, httpx.Client(base_url=server.url, timeout=60,
                                                           headers={"Authorization": f"Bearer {token}"}) as client:
        received.add("datasets", client.get("/v1/datasets"))
        for dataset in ("dig-lerobot", "dig-robomimic"):
            manifest = received.add(f"{dataset} manifest", client.get(f"/v1/datasets/{dataset}/manifest")).json()
            for entry in manifest["files"]:
                received.add(f"{dataset}/{entry['path']}", client.get(f"/v1/datasets/{dataset}/files/{entry['path']}"))
        listing = received.add("listing", client.get("/v1/episodes")).json()["episodes"]
        listing = wait_for(lambda: with_videos(received.add("listing", client.get("/v1/episodes"))),
                           timeout=300, interval=0.5, message="the partner review videos")
        for item in listing:  # the review videos: bytes, ranges, the signed URL and what it serves
            video = item["review_video"]
            received.add(f"review video {item['episode_id']}", client.get(video["url"]))
            received.add(f"review video tail {item['episode_id']}", client.get(video["url"],
                                                                               headers={"Range": "bytes=-4096"}))
            signed = received.add(f"review url {item['episode_id']}",
                                  client.get(f"/v1/episodes/{item['episode_id']}/review-url")).json()["url"]
            received.add(f"signed review video {item['episode_id']}", httpx.get(server.url + signed, timeout=60))
        for page in ("/", "/partner", "/static/partner/partner.js", "/static/partner/partner.css"):
            received.add(f"page {page}", httpx.get(server.url + page, timeout=60))
        for query in ({"operator_id": ANNA.operator_id}, {"task": SESSIONS[BERT][0]["task"]}, {"since": "2999-01-01"},
                      {"valid": "maybe"}):
            received.add(f"listing {query}", client.get("/v1/episodes", params=query))
        for item in listing:
            received.add(f"episode {item['episode_id']}", client.get(f"/v1/episodes/{item['episode_id']}"))
            received.add(f"episode head {item['episode_id']}", client.head(f"/v1/episodes/{item['episode_id']}"))
        with h5py.File(episodes[CLEO], "r") as handle:
            refused = str(handle.attrs["episode_id"])
        received.add("not exported", client.get(f"/v1/episodes/{refused}"))
        client.headers["Authorization"] = f"Bearer {robomimic_token}"
        robomimic_listing = received.add("robomimic-only listing", client.get("/v1/episodes")).json()["episodes"]
        robomimic_listing = wait_for(lambda: with_videos(received.add("robomimic-only listing",
                                                                      client.get("/v1/episodes"))),
                                     timeout=300, interval=0.5, message="the partner review videos")
        for item in robomimic_listing:
            episode_id = item["episode_id"]
            received.add(f"robomimic-only episode {episode_id}", client.get(f"/v1/episodes/{episode_id}"))
            received.add(f"robomimic-only review video {episode_id}", client.get(item["review_video"]["url"]))
    return PrivacySite(root, episodes, received, listing, robomimic_listing)


def test_the_identities_are_really_in_the_recordings(privacy_site: PrivacySite) -> None:
    """The search below is only meaningful if the site's own files do hold every identity."""
    blob = b"".join(path.read_bytes() for path in privacy_site.episodes.values())
    blob += (privacy_site.root / ".excap" / "operators.yaml").read_bytes()
    assert set(identities_in(blob, identities(*PEOPLE))) == set(identities(*PEOPLE))
    for person in FREE_TEXT_ONLY:
        with h5py.File(privacy_site.episodes[person], "r") as handle:
            kinds = {k.decode() for k in handle["events/kind"][()]}
            assert {"certification", "marker", "metadata", "station_action", "operator_phase"} <= kinds
            assert handle.attrs["notes"] and person.certificate in handle.attrs["certification"]
            assert handle["annotations"].attrs["author"] == LOGIN
            assert LOGIN in handle["can/can0"].attrs["dbc"] and LOGIN in handle["cameras/side"].attrs["source"]


def test_nothing_a_partner_receives_names_a_person(privacy_site: PrivacySite) -> None:
    received = privacy_site.received
    # what was received is real: both consented operators' episodes, valid, with their events and annotations
    assert sorted(e["operator_id"].startswith("anon-") for e in privacy_site.listing) == [True, True]
    assert len({e["operator_id"] for e in privacy_site.listing}) == 2
    parts = received.parts
    assert len([what for what in parts if what.startswith("dig-lerobot/videos/")]) == 2  # one per episode
    assert len(received.body("dig-robomimic/dig.hdf5")) > 10_000
    assert sum(what.startswith("episode 2") for what in parts) == 2
    assert received.body("not exported") == b'{"detail":"no such episode"}'
    assert b" 400 " in parts["listing {'valid': 'maybe'}"][0]
    leaks = received.leaks(identities(*PEOPLE))
    assert leaks == {}, leaks


def test_review_videos_reach_partners_as_listed_and_hold_no_identity(privacy_site: PrivacySite,
                                                                     tmp_path: Path) -> None:
    """The review videos (H.264, drawn from the redacted copy, faces blurred) are among what was searched above;
    the listing names the bytes served, and the page's own files hold no data."""
    received = privacy_site.received
    for entry in privacy_site.listing:
        body = received.body(f"review video {entry['episode_id']}")
        assert body == received.body(f"signed review video {entry['episode_id']}")
        assert hashlib.sha256(body).hexdigest() == entry["review_video"]["sha256"]
        assert len(body) == entry["review_video"]["size"] > 10_000
        video = tmp_path / f"{entry['episode_id']}.mp4"
        video.write_bytes(body)
        assert video_stream(video)["codec"] == "h264"
        assert identities_in(body, [*identities(*PEOPLE), SIMULATOR_TRUTH]) == {}
    page = received.body("page /")
    assert b"<video" not in page and b"anon-" not in page and page == received.body("page /partner")
    assert received.leaks(identities(*PEOPLE)) == {}


SIMULATOR_TRUTH = "operator_phase"  # the scripted operator's work phase: the simulator's truth, not a recording


def test_the_simulator_truth_never_reaches_a_partner(privacy_site: PrivacySite, tmp_path: Path) -> None:
    """The recordings hold the scripted operator's phases; nothing a partner receives does, in any spelling."""
    for path in privacy_site.episodes.values():
        with h5py.File(path, "r") as handle:
            assert SIMULATOR_TRUTH.encode() in set(handle["events/kind"][()])
    assert sum(what.startswith("episode 2") for what in privacy_site.received.parts) == 2
    assert privacy_site.received.leaks([SIMULATOR_TRUTH]) == {}
    exports = [p for p in sorted((privacy_site.root / "exports").rglob("*")) if p.is_file()]
    assert exports and [p for p in exports if identities_in(p.read_bytes(), [SIMULATOR_TRUTH])] == []
    for person in PEOPLE:  # the allow-list alone, without any registry to scrub against
        copy = tmp_path / f"{person.operator_id}.h5"
        with h5py.File(privacy_site.episodes[person], "r") as source, h5py.File(copy, "w") as target:
            write_redacted(source, target, Scrubber(Identities(), lambda operator: "anon-0000000000000000"))
        assert validate_episode(copy) == []
        assert identities_in(copy.read_bytes(), [SIMULATOR_TRUTH]) == {}
        with h5py.File(copy, "r") as handle:
            kinds = {k.decode() for k in handle["events/kind"][()]}
        assert {"start", "metadata", "certification"} <= kinds and SIMULATOR_TRUTH not in kinds


def test_a_wheel_loaders_phase_truth_is_withheld(loader_episodes: LoaderEpisodes, tmp_path: Path) -> None:
    source = loader_episodes.paths[0]
    with h5py.File(source, "r") as handle:
        phases = [json.loads(d)["phase"] for k, d in zip(handle["events/kind"][()], handle["events/detail"][()],
                                                          strict=True) if k.decode() == SIMULATOR_TRUTH]
        rows = len(handle["events/kind"])
    assert {"load", "haul_loaded", "dump", "return_empty"} <= set(phases)
    copy = tmp_path / "partner.h5"
    with h5py.File(source, "r") as handle, h5py.File(copy, "w") as target:
        write_redacted(handle, target, Scrubber(Identities(), lambda operator: "anon-0000000000000000"))
    assert validate_episode(copy) == []
    with h5py.File(copy, "r") as handle:
        kinds = [k.decode() for k in handle["events/kind"][()]]
        assert len(handle["can/can0/decoded/LoaderLinkage/LiftAngle"]) > 1000
    assert SIMULATOR_TRUTH not in kinds and len(kinds) == rows - len(phases)
    assert identities_in(copy.read_bytes(), [SIMULATOR_TRUTH, "haul_loaded", "return_empty"]) == {}


def test_exports_on_disk_hold_no_identities(privacy_site: PrivacySite) -> None:
    """Also the export's work files, which are never served."""
    exports = privacy_site.root / "exports"
    files = [p for p in sorted(exports.rglob("*")) if p.is_file()]
    assert any(p.suffix == ".parquet" for p in files) and any(p.suffix == ".hdf5" for p in files)
    leaks = {str(p.relative_to(exports)): sorted(identities_in(p.read_bytes(), identities(*PEOPLE))) for p in files}
    assert {k: v for k, v in leaks.items() if v} == {}


def test_partner_copies_keep_the_recording_and_only_allowed_details(privacy_site: PrivacySite,
                                                                    tmp_path: Path) -> None:
    listed = {e["episode_id"]: e for e in privacy_site.listing}
    for what, (_, body) in privacy_site.received.parts.items():
        if not what.startswith("episode 2"):
            continue
        copy = tmp_path / f"{what.split()[-1]}.h5"
        copy.write_bytes(body)
        assert validate_episode(copy) == []
        with h5py.File(copy, "r") as handle:
            entry = listed[handle.attrs["episode_id"]]
            assert handle.attrs["operator_id"] == entry["operator_id"]
            assert handle.attrs["notes"] == "" and handle.attrs["certification"] == ""
            assert handle["annotations"].attrs["author"] == "" and "reason" not in handle["annotations"].attrs
            assert handle["cameras/side"].attrs["source"] == "" and handle["can/can0"].attrs["dbc"] == "machine.dbc"
            events = [(k.decode(), json.loads(d)) for k, d in zip(handle["events/kind"][()],
                                                                   handle["events/detail"][()], strict=True)]
            assert ("certification", {"state": "certified"}) in events
            assert [detail for kind, detail in events if kind == "marker"] in ([{"index": 1}], [{"index": 2}])
            assert ("metadata", {}) in events and ("metadata", {"outcome": "success"}) in events
            assert len(handle["cameras/side/frames"]) > 5 and len(handle["control/t_ns"]) > 50


def test_the_allow_list_alone_removes_free_text_identities(privacy_site: PrivacySite, tmp_path: Path) -> None:
    """Without the registry (nothing known to scrub), the allow-list by itself drops every free text: removing any
    part of it (notes, certification, metadata/marker/certification event details, annotation author or reason,
    device paths) makes this fail."""
    for person in FREE_TEXT_ONLY:
        copy = tmp_path / f"{person.operator_id}.h5"
        with h5py.File(privacy_site.episodes[person], "r") as source, h5py.File(copy, "w") as target:
            write_redacted(source, target, Scrubber(Identities(), lambda operator: "anon-0000000000000000"))
        assert validate_episode(copy) == []
        assert identities_in(copy.read_bytes(), identities(*PEOPLE)) == {}


def test_the_listing_hashes_the_bytes_each_partner_downloads(privacy_site: PrivacySite) -> None:
    """Both partners: the listed SHA-256 and size are those of the downloaded (redacted) copy, never of the recorded
    file; the partner granted only the robomimic export sees the episodes it was made from."""
    received = privacy_site.received
    with h5py.File(privacy_site.root / "exports" / "dig-robomimic" / "dig.hdf5", "r") as handle:
        in_robomimic = sorted(str(demo.attrs["excap_episode_id"]) for demo in handle["data"].values())
    assert sorted(e["episode_id"] for e in privacy_site.robomimic_listing) == in_robomimic
    assert len(in_robomimic) == 2
    recorded = {path.read_bytes() for path in privacy_site.episodes.values()}
    for prefix, listing in (("episode", privacy_site.listing), ("robomimic-only episode",
                                                                 privacy_site.robomimic_listing)):
        for entry in listing:
            body = received.body(f"{prefix} {entry['episode_id']}")
            assert body not in recorded
            assert entry["sha256"] == hashlib.sha256(body).hexdigest() and entry["size"] == len(body)
    pseudonyms = {e["operator_id"] for e in privacy_site.listing}
    assert not pseudonyms & {e["operator_id"] for e in privacy_site.robomimic_listing}  # per-partner pseudonyms


def test_registered_identities_in_shown_fields_are_scrubbed(privacy_site: PrivacySite) -> None:
    bert = next(e for e in privacy_site.listing if e["task"] != "dig-and-load")
    assert bert["task"] == "" and bert["site"] == f"pit of {bert['operator_id']}"


def test_the_state_folder_is_private(privacy_site: PrivacySite) -> None:
    state = privacy_site.root / ".excap"
    assert os.stat(state).st_mode & 0o777 == DIR_MODE  # created 0755 before: repaired
    modes = {p.relative_to(state).as_posix(): p.stat().st_mode & 0o777 for p in state.rglob("*")}
    assert {"catalogue.sqlite", "partners.sqlite", "pseudonym.key", "access.log", "operators.yaml"} <= set(modes)
    assert any(name.startswith("partner-episodes/acme/") for name in modes)
    assert {name: mode for name, mode in modes.items()
            if mode != (DIR_MODE if (state / name).is_dir() else FILE_MODE)} == {}
