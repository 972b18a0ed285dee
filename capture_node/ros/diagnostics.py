"""/diagnostics of the node: the station's health findings (`excap.station.health`) as DiagnosticStatus messages,
one per subject (`excap: <subject>`), so the station page and ROS report the same level for the same condition. A
problem's message is the page's plain-words sentence (what is wrong, what it means, what to do); `since_s` says how
long it has held."""

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

from excap.station.health import Finding, HealthThresholds, assess
from excap.station.runtime import StationRuntime
from excap.station.status import StationMonitor

LEVELS = {0: DiagnosticStatus.OK, 1: DiagnosticStatus.WARN, 2: DiagnosticStatus.ERROR}


def node_thresholds(stale_after_s: float, min_free_gb: float) -> HealthThresholds:
    """The node's parameters `stale_after_s` and `min_free_gb` as health thresholds (ERROR below a quarter)."""
    return HealthThresholds(stale_after_s=stale_after_s, disk_warn_bytes=min_free_gb * 1e9)


def diagnostic_status(finding: Finding, hardware_id: str) -> DiagnosticStatus:
    values = dict(finding.values)
    if finding.since_s is not None:
        values["since_s"] = f"{finding.since_s:.1f}"
    return DiagnosticStatus(level=LEVELS[int(finding.level)], name=f"excap: {finding.subject}", message=finding.text,
                            hardware_id=hardware_id, values=[KeyValue(key=k, value=v) for k, v in values.items()])


def station_diagnostics(runtime: StationRuntime, monitor: StationMonitor, hardware_id: str) -> list[DiagnosticStatus]:
    return [diagnostic_status(finding, hardware_id) for finding in assess(runtime, monitor)]
