"""What a valid CAN frame is: identifier range, data length code and data length, for classic CAN and CAN FD.

python-can keeps a frame's `dlc` as its data length in bytes: 0 to 8 for classic CAN, and one of the CAN FD
lengths (0 to 8, 12, 16, 20, 24, 32, 48, 64) for CAN FD. Episodes store that same number.
"""

from __future__ import annotations

import numpy as np

STANDARD_ID_LIMIT = 1 << 11
EXTENDED_ID_LIMIT = 1 << 29
CLASSIC_MAX_LENGTH = 8
FD_LENGTHS = (*range(9), 12, 16, 20, 24, 32, 48, 64)


def frame_problem(arbitration_id: int, extended: bool, dlc: int, data_length: int, fd: bool) -> str | None:
    """Why a frame is not a valid CAN frame, or None if it is."""
    limit = EXTENDED_ID_LIMIT if extended else STANDARD_ID_LIMIT
    if not 0 <= arbitration_id < limit:
        return f"id {arbitration_id:#x} out of range for a {'29' if extended else '11'}-bit identifier"
    if fd:
        if dlc not in FD_LENGTHS:
            return f"DLC {dlc} is not a CAN FD length"
    elif not 0 <= dlc <= CLASSIC_MAX_LENGTH:
        return f"DLC {dlc} out of range 0..{CLASSIC_MAX_LENGTH}"
    if data_length != dlc:
        return f"{data_length} data bytes for DLC {dlc}"
    return None


def invalid_rows(ids: np.ndarray, extended: np.ndarray, dlc: np.ndarray, fd: bool) -> np.ndarray:
    """Indices of the stored rows (id, extended, dlc columns) that are not valid frames."""
    ids = np.asarray(ids, dtype=np.int64)
    limits = np.where(np.asarray(extended, dtype=bool), EXTENDED_ID_LIMIT, STANDARD_ID_LIMIT)
    lengths = np.asarray(dlc, dtype=np.int64)
    bad_length = ~np.isin(lengths, FD_LENGTHS) if fd else (lengths < 0) | (lengths > CLASSIC_MAX_LENGTH)
    return np.flatnonzero((ids < 0) | (ids >= limits) | bad_length)
