"""Operator certification: may this operator record demonstrations on this kind of machine today?

The answer comes from the operator registry (capture_node/people/registry.py): an operator is certified
for a machine kind on a day if one of their certificates names that machine kind and has not expired (a
certificate is valid through its expiry date). A certificate that names no machine kinds certifies none.

Before recording, the station's policy (`session.certification_policy` in the station config) decides:
`refuse` (default) does not record an uncertified operator; `mark` records, and the episode's `certification`
attribute becomes "UNCERTIFIED: <reason>", with a `certification` event. `mark_uncertified` is an accepted alias of
`mark`. The `certification` value always comes from this check, never from free text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, NamedTuple, Protocol

from excap.people.registry import Certificate, OperatorRegistry

POLICIES = ("refuse", "mark")
POLICY_ALIASES = {"mark_uncertified": "mark"}
ACCEPTED_POLICIES = (*POLICIES, *POLICY_ALIASES)
DEFAULT_POLICY = "refuse"
CERTIFIED, MISSING, EXPIRED, WRONG_MACHINE_KIND = "certified", "missing", "expired", "wrong_machine_kind"
UNCERTIFIED_PREFIX = "UNCERTIFIED: "


def certificate_ref(certificate: Certificate) -> str:
    """How a certificate is referred to in episodes: kind, number (`ref`) if any, and expiry."""
    ref = certificate.extra.get("ref")
    text = f"{certificate.kind} #{ref}" if ref else certificate.kind
    return f"{text} (valid to {certificate.expiry.isoformat()})" if certificate.expiry else text


@dataclass(frozen=True)
class CertificationStatus:
    state: str  # certified | missing | expired | wrong_machine_kind
    reason: str
    certificate: Certificate | None = None

    @property
    def certified(self) -> bool:
        return self.state == CERTIFIED

    @property
    def ref(self) -> str:
        return certificate_ref(self.certificate) if self.certificate is not None else ""


def certification_status(registry: OperatorRegistry | None, operator_id: str, machine_kind: str,
                         day: date | None = None) -> CertificationStatus:
    day = day or datetime.now(UTC).date()
    operator = registry.get(operator_id) if registry is not None else None
    if operator is None:
        return CertificationStatus(MISSING, f"operator {operator_id!r} is not in the operator registry")
    if not operator.certificates:
        return CertificationStatus(MISSING, f"operator {operator_id!r} has no certificate")
    for_kind = [c for c in operator.certificates if machine_kind in c.machine_kinds]
    valid = [c for c in for_kind if c.valid_on(day)]
    if valid:
        best = max(valid, key=lambda c: (c.expiry is None, c.expiry or date.min))  # the longest-lasting one
        return CertificationStatus(CERTIFIED, f"certified for {machine_kind}: {certificate_ref(best)}", best)
    if for_kind:
        latest = max(for_kind, key=lambda c: c.expiry or date.min)
        expiry = latest.expiry.isoformat() if latest.expiry else "?"
        return CertificationStatus(EXPIRED, f"certificate {latest.kind} for {machine_kind} expired on {expiry}",
                                   latest)
    kinds = sorted({k for c in operator.certificates if c.valid_on(day) for k in c.machine_kinds})
    has = f"certified for {', '.join(kinds)} only" if kinds else "no valid certificate for any machine kind"
    return CertificationStatus(WRONG_MACHINE_KIND, f"not certified for {machine_kind} ({has})")


class CertificationCheck(NamedTuple):
    allowed: bool
    metadata: dict[str, str]  # episode metadata updates (the `certification` attribute)
    message: str
    status: CertificationStatus | None = None


def check_before_recording(registry: OperatorRegistry | None, operator_id: str, machine_kind: str,
                           policy: str = DEFAULT_POLICY, day: date | None = None) -> CertificationCheck:
    """Whether to record, what the episode's `certification` attribute becomes, and a line for the operator."""
    policy = canonical_policy(policy)
    status = certification_status(registry, operator_id, machine_kind, day)
    if status.certified:
        return CertificationCheck(True, {"certification": status.ref}, status.reason, status)
    if policy == "refuse":
        return CertificationCheck(False, {}, f"not recording: {status.reason} (policy refuse)", status)
    return CertificationCheck(True, {"certification": UNCERTIFIED_PREFIX + status.reason},
                              f"recording marked uncertified: {status.reason}", status)


class _Recording(Protocol):
    metadata: Any

    def event(self, kind: str, t_ns: int | None = None, **detail: Any) -> None: ...


def apply_check(recorder: _Recording, check: CertificationCheck) -> None:
    """Put an allowed check's outcome into a recording: the episode metadata, and a `certification` event.

    Call it before `Recorder.start()`: the root attributes are written when recording starts."""
    for key, value in check.metadata.items():
        setattr(recorder.metadata, key, value)
    status = check.status
    recorder.event("certification", state=status.state if status else "", reason=status.reason if status else "",
                   certification=check.metadata.get("certification", ""))


def canonical_policy(policy: str) -> str:
    """`refuse` or `mark` (`mark_uncertified` is an alias of `mark`); ValueError for anything else."""
    canonical = POLICY_ALIASES.get(policy, policy)
    if canonical not in POLICIES:
        raise ValueError(f"certification policy must be one of {', '.join(POLICIES)}, not {policy!r}")
    return canonical


def policy_of(session: dict[str, str]) -> str:
    """The certification policy of a station config's `session` section (`refuse` or `mark`)."""
    return canonical_policy(session.get("certification_policy") or DEFAULT_POLICY)
