"""The certification check of a station: its operator registry, its policy, and starting a checked episode.

The registry is `OUT_DIR/.excap/operators.yaml` of the station's episode folder (as kept by `excap operator`),
read again for every check so changes apply without restarting the station. The policy is the config's
`session.certification_policy` (see `capture_node/people/certification.py`).
"""

from __future__ import annotations

from datetime import date

from excap.core.errors import ConfigError, ExcapError
from excap.people.certification import CertificationCheck, apply_check, check_before_recording, policy_of
from excap.people.registry import OperatorRegistry, load_registry, registry_path
from excap.record.recorder import Recorder
from excap.station.config import StationConfig
from excap.station.runtime import StationRuntime


class CertificationRefused(ExcapError):
    """The station's policy refuses to record this operator."""

    def __init__(self, check: CertificationCheck) -> None:
        super().__init__(check.message)
        self.check = check


def station_registry(config: StationConfig) -> tuple[OperatorRegistry | None, str]:
    """The station's operator registry (None if absent or unreadable) and, if so, why."""
    path = registry_path(config.out_dir)
    if not path.is_file():
        return None, f"no operator registry at {path}"
    try:
        return load_registry(path), ""
    except ConfigError as exc:
        return None, str(exc)


def session_operator(config: StationConfig, overrides: dict[str, str] | None = None) -> str:
    return (overrides or {}).get("operator") or config.session.get("operator") or "anonymous"


def check_station_operator(config: StationConfig, operator_id: str, day: date | None = None) -> CertificationCheck:
    """May `operator_id` record on this station's machine kind, under the station's policy?"""
    registry, problem = station_registry(config)
    check = check_before_recording(registry, operator_id, config.profile.kind, policy_of(config.session), day)
    if problem and not (check.status and check.status.certified):
        check = check._replace(message=f"{check.message} ({problem})")
    return check


def start_certified(runtime: StationRuntime, overrides: dict[str, str] | None = None,
                    check: CertificationCheck | None = None) -> tuple[Recorder, CertificationCheck]:
    """Check the operator, then start an episode whose metadata carries the outcome of the check.

    Raises CertificationRefused (nothing is recorded) when the policy refuses the operator.
    """
    overrides = {k: v for k, v in (overrides or {}).items() if v and k != "certification"}  # only the check's
    if check is None:
        check = check_station_operator(runtime.config, session_operator(runtime.config, overrides))
    if not check.allowed:
        raise CertificationRefused(check)
    recorder = runtime.start_episode({**overrides, **check.metadata})  # root attributes are written at start
    apply_check(recorder, check)  # same metadata, plus the `certification` event
    return recorder, check
