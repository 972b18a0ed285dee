"""People: the operator registry, certification, consent and the hours ledger."""
