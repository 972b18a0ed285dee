"""The people behind the demonstrations: the operator registry (DIR/.excap/operators.yaml) with certificates,
consent and per-partner pseudonyms, the certification check before recording, and the ledger of demonstrations
and accepted hours per operator and task.

Public names are imported on first use (`excap.core.lazy_exports`): importing the package, or any
module in it, imports nothing else.
"""

from typing import TYPE_CHECKING

from excap.core.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from excap.people.admin import add_operator, certify_operator, set_consent
    from excap.people.certification import (
        CertificationCheck,
        CertificationStatus,
        certification_status,
        check_before_recording,
    )
    from excap.people.ledger import LedgerRow, build_ledger
    from excap.people.registry import Certificate, Operator, OperatorRegistry, load_registry, pseudonym

__all__ = ["Certificate", "CertificationCheck", "CertificationStatus", "LedgerRow", "Operator", "OperatorRegistry",
           "add_operator", "build_ledger", "certification_status", "certify_operator", "check_before_recording",
           "load_registry", "pseudonym", "set_consent"]

__getattr__, __dir__ = lazy_exports(__name__, __all__, {
    "excap.people.registry": ["Certificate", "Operator", "OperatorRegistry", "load_registry", "pseudonym"],
    "excap.people.certification": ["CertificationCheck", "CertificationStatus", "certification_status",
                                  "check_before_recording"],
    "excap.people.admin": ["add_operator", "certify_operator", "set_consent"],
    "excap.people.ledger": ["LedgerRow", "build_ledger"],
})
