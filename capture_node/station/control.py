"""What an operator station can be asked to do, from its page or its joysticks: start, stop, label, discard, mark.

`StationController` holds the session form (operator, site, task, notes), checks the operator's certification and the
readiness of the required devices before every start, and confirms every action twice: a `station_action` event in the
episode (a `marker` event for markers) and a message for the page and the status line. Actions are serialised; a
refused action (not recording, already recording, operator not certified, devices not ready) changes nothing and says
why.

A start refused because required devices have not delivered data (`excap.station.readiness`) has the code
`devices_not_ready` and the list of devices; `act("start", override=True)` starts anyway and records a
`start_override` event (the devices, the source, the operator). Joystick bindings never override. A start within
`ready_wait_s` of the devices opening waits (bounded) for them first instead of refusing at once.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from excap.core.clock import now_ns
from excap.core.errors import ExcapError
from excap.people.certification import CertificationCheck
from excap.station.certification import CertificationRefused, check_station_operator, start_certified
from excap.station.readiness import NOT_READY_CODE, NotReady, not_ready, not_ready_text, override_detail, wait_ready
from excap.station.runtime import StationRuntime

ACTIONS = ("start", "stop", "start_stop", "success", "failure", "discard", "marker")
SESSION_KEYS = ("operator", "site", "task", "notes")
MAX_MESSAGES = 50
READY_WAIT_S = 5.0  # a start this soon after the devices opened waits for them (bounded) instead of refusing


@dataclass(frozen=True)
class Message:
    seq: int
    wall_time: float
    level: str  # info | warn | error
    action: str
    source: str  # page | joystick | api
    text: str


@dataclass(frozen=True)
class ActionResult:
    ok: bool
    action: str
    message: str
    episode_id: str = ""
    path: str = ""
    marker: int = 0
    code: str = ""  # why a refused action was refused, for programs: e.g. devices_not_ready
    devices: tuple[dict[str, str], ...] = ()  # devices_not_ready: {device, reason} of each
    message_seq: int = 0  # the number of the station message that says this result (status `messages`)


class StationController:
    def __init__(self, runtime: StationRuntime, ready_wait_s: float = READY_WAIT_S) -> None:
        self.runtime = runtime
        self.ready_wait_s = ready_wait_s
        self.session: dict[str, str] = {k: runtime.config.session.get(k, "") for k in SESSION_KEYS}
        self.session["operator"] = self.session["operator"] or "anonymous"
        self.messages: deque[Message] = deque(maxlen=MAX_MESSAGES)
        self.last_check: CertificationCheck | None = None
        self.last_episode: dict[str, Any] | None = None
        self._seq = 0
        self._lock = threading.RLock()

    # -- session ----------------------------------------------------------------------------------

    def update_session(self, values: dict[str, Any]) -> dict[str, str]:
        unknown = [k for k in values if k not in SESSION_KEYS]
        if unknown:
            raise ExcapError(f"unknown session field(s): {', '.join(unknown)} (known: {', '.join(SESSION_KEYS)})")
        with self._lock:
            for key, value in values.items():
                self.session[key] = str(value or "").strip()
            return dict(self.session)

    def certification(self) -> CertificationCheck:
        """The check the next start would make, from the registry as it is now."""
        check = check_station_operator(self.runtime.config, self.session.get("operator") or "anonymous")
        self.last_check = check
        return check

    # -- actions ----------------------------------------------------------------------------------

    def act(self, action: str, source: str = "page", label: str = "", override: bool = False) -> ActionResult:
        """Do `action`; `override` (start only) starts even if required devices are not ready."""
        if action not in ACTIONS:
            return self._say(ActionResult(False, action, f"unknown action {action!r}"), source)
        with self._lock:
            try:
                result = self._act(action, source, label, override)
            except CertificationRefused as exc:
                self.last_check = exc.check
                result = ActionResult(False, action, str(exc))
            except ExcapError as exc:
                result = ActionResult(False, action, f"{action} failed: {exc}")
        return self._say(result, source)

    def _act(self, action: str, source: str, label: str, override: bool) -> ActionResult:
        runtime = self.runtime
        if action == "start_stop":
            action = "stop" if runtime.recording else "start"
        if action == "start":
            if runtime.recording:
                return ActionResult(False, action, "already recording")
            missing = self.devices_not_ready()
            if missing and not override:
                return ActionResult(False, action, not_ready_text(missing), code=NOT_READY_CODE,
                                    devices=tuple(d.as_json() for d in missing))
            recorder, check = start_certified(runtime, dict(self.session))
            self.last_check = check
            runtime.switch.event("station_action", action="start", source=source)
            if missing:
                runtime.switch.event("start_override", **override_detail(missing, source,
                                                                         recorder.metadata.operator_id))
            episode_id = recorder.metadata.episode_id
            certified = check.status is not None and check.status.certified
            text = f"recording {episode_id}" + ("" if certified else f" ({check.message})")
            text += f"; started anyway, {not_ready_text(missing)}" if missing else ""
            return ActionResult(True, action, text, episode_id=episode_id)
        if not runtime.recording:
            return ActionResult(False, action, f"{action}: not recording")
        if action == "marker":
            index = runtime.mark(label)
            return ActionResult(True, action, f"marker {index}" + (f": {label}" if label else ""), marker=index)
        episode_id = runtime.recorder.metadata.episode_id if runtime.recorder else ""
        outcome = {"success": "success", "failure": "failure"}.get(action)
        detail: dict[str, Any] = {"outcome": outcome} if outcome else {}
        runtime.switch.event("station_action", action=action, source=source, **detail)
        if action == "discard":
            runtime.discard_episode(reason="discard")
            self.last_episode = {"episode_id": episode_id, "path": "", "outcome": "", "discarded": True}
            return ActionResult(True, action, f"discarded {episode_id}", episode_id=episode_id)
        path = runtime.stop_episode(outcome=outcome, reason=action)
        final = runtime.last.outcome if runtime.last else (outcome or "")
        self.last_episode = {"episode_id": episode_id, "path": str(path), "outcome": final, "discarded": False}
        return ActionResult(True, action, f"saved {Path(path).name} (outcome {final})", episode_id=episode_id,
                            path=str(path))

    def devices_not_ready(self) -> list[NotReady]:
        """The required devices not ready now; soon after the devices opened, after waiting for them (bounded)."""
        opened_at = self.runtime.opened_at
        wait_s = 0.0 if opened_at is None else opened_at + self.ready_wait_s - time.monotonic()
        return wait_ready(self.runtime, wait_s) if wait_s > 0 else not_ready(self.runtime)

    def _say(self, result: ActionResult, source: str) -> ActionResult:
        with self._lock:
            self._seq += 1
            level = "info" if result.ok else ("error" if result.action == "start" else "warn")
            self.messages.append(Message(self._seq, time.time(), level, result.action, source, result.message))
            return replace(result, message_seq=self._seq)

    def note(self, text: str, level: str = "info", source: str = "station") -> None:
        """A message that is not the outcome of an action (e.g. a binding armed)."""
        with self._lock:
            self._seq += 1
            self.messages.append(Message(self._seq, time.time(), level, "", source, text))

    # -- state ------------------------------------------------------------------------------------

    def recording_state(self) -> dict[str, Any]:
        recorder = self.runtime.recorder
        if recorder is None or not recorder.start_t_ns:
            return {"active": False, "episode_id": "", "elapsed_s": 0.0, "fault": ""}
        return {"active": True, "episode_id": recorder.metadata.episode_id,
                "elapsed_s": max(0.0, (now_ns() - recorder.start_t_ns) / 1e9),
                "fault": str(recorder.fault or "")}

    def message_list(self, limit: int = 10) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(m) for m in list(self.messages)[-limit:]]
