"""Reading CAN log files frame by frame, keeping only valid frames and counting the rest.

Every frame python-can reads is checked (excap.episode.can_frames: identifier range, DLC and data length,
plus a finite timestamp between 1970 and 2100); invalid frames are skipped and counted with their reasons,
never passed on. Text logs are read with bounded lines: a line longer than `MAX_LINE_CHARS` is skipped without
being held in memory. Line-oriented logs (candump `.log`, python-can `.csv`) are parsed one line at a time, so a
line python-can cannot parse is skipped too; the other formats (`.asc`, `.trc`, `.blf`, `.mf4`, ...) are read by
python-can as a whole, and a failure to read them is one ExcapError line.
"""

from __future__ import annotations

import io
import logging
import math
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import can

from excap.core.errors import ExcapError
from excap.episode.can_frames import frame_problem

MAX_LINE_CHARS = 4096  # a CAN FD frame in any text format needs well under 1000
MIN_TIMESTAMP_S = 0.0
MAX_TIMESTAMP_S = 4_102_444_800.0  # 2100-01-01T00:00:00Z
REASONS_KEPT = 5
TEXT_SUFFIXES = (".log", ".asc", ".trc", ".csv")
LINE_READERS: dict[str, type] = {".log": can.CanutilsLogReader, ".csv": can.CSVReader}


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


@dataclass
class SkippedFrames:
    """Frames (or lines) left out of an import, with the first few reasons."""

    count: int = 0
    reasons: list[str] = field(default_factory=list)

    def add(self, where: str, reason: str) -> None:
        self.count += 1
        if len(self.reasons) < REASONS_KEPT:
            self.reasons.append(f"{where}: {reason}")

    def summary(self) -> str:
        more = "; ..." if self.count > len(self.reasons) else ""
        return f"{self.count} invalid frames skipped ({'; '.join(self.reasons)}{more})"


def timestamp_problem(timestamp: float) -> str | None:
    if not isinstance(timestamp, int | float) or not math.isfinite(timestamp):
        return f"timestamp {timestamp!r} is not a finite number"
    if not MIN_TIMESTAMP_S <= timestamp < MAX_TIMESTAMP_S:
        return f"timestamp {timestamp!r} s outside 1970 .. 2100"
    return None


def message_problem(msg: can.Message) -> str | None:
    """Why a message read from a log cannot be stored, or None."""
    problem = timestamp_problem(msg.timestamp)
    if problem or msg.is_error_frame:
        return problem
    data_length = len(msg.data) if msg.data is not None else 0
    if msg.is_remote_frame and data_length == 0:
        data_length = msg.dlc  # a remote frame requests dlc bytes and carries none
    return frame_problem(int(msg.arbitration_id), bool(msg.is_extended_id), int(msg.dlc), data_length,
                         bool(msg.is_fd))


def bounded_lines(path: Path) -> Iterator[tuple[int, str | None]]:
    """(line number, text) of a text file; text is None for a line longer than MAX_LINE_CHARS (not kept)."""
    with path.open("r", encoding="utf-8", errors="replace", newline=None) as handle:
        number = 0
        while line := handle.readline(MAX_LINE_CHARS + 1):
            number += 1
            if len(line) <= MAX_LINE_CHARS:
                yield number, line
                continue
            while line and not line.endswith("\n"):
                line = handle.readline(MAX_LINE_CHARS + 1)
            yield number, None


def _text_suffix(log: Path) -> str | None:
    suffix = log.suffix.lower()
    return suffix if suffix in TEXT_SUFFIXES else None


@contextmanager
def _quiet_python_can() -> Iterator[None]:
    reader_log = logging.getLogger("can.io")
    level = reader_log.level
    reader_log.setLevel(logging.ERROR)  # a foreign file would log a warning per line before failing
    try:
        yield
    finally:
        reader_log.setLevel(level)


def candump_id_problem(line: str) -> str | None:
    """python-can keeps only the low 29 bits of a candump identifier; a wider one is refused here instead."""
    fields = line.split()
    if len(fields) < 3 or "#" not in fields[2]:
        return None  # python-can reports what is wrong with it
    text = fields[2].split("#", 1)[0]
    try:
        value = int(text, 16)
    except ValueError:
        return None
    if len(text) > 8 or value >> 30:
        return f"identifier {text[:16]} beyond 29 bits"
    return None


def _line_messages(log: Path, reader_class: type, skipped: SkippedFrames) -> Iterator[tuple[str, can.Message]]:
    lines = bounded_lines(log)
    header = ""
    if reader_class is can.CSVReader:
        first = next(lines, None)
        header = first[1] if first is not None and first[1] is not None else "timestamp\n"
    for number, line in lines:
        where = f"line {number}"
        if line is None:
            skipped.add(where, f"longer than {MAX_LINE_CHARS} characters")
            continue
        if not line.strip():
            continue
        problem = candump_id_problem(line) if reader_class is can.CanutilsLogReader else None
        if problem:
            skipped.add(where, problem)
            continue
        try:
            messages = list(reader_class(io.StringIO(header + line)))
        except Exception as exc:  # python-can raises ValueError, IndexError, binascii.Error, ... on a bad line
            skipped.add(where, f"cannot be parsed ({one_line(exc)})")
            continue
        for msg in messages:
            yield where, msg


def _whole_file_messages(log: Path, skipped: SkippedFrames) -> Iterator[tuple[str, can.Message]]:
    options = {"relative_timestamp": False} if ".asc" in [s.lower() for s in log.suffixes] else {}
    with tempfile.TemporaryDirectory(prefix="excap-can-") as folder:
        source = log
        if _text_suffix(log) is not None and any(text is None for _, text in bounded_lines(log)):
            source = Path(folder) / f"bounded{log.suffix}"  # python-can picks the reader by suffix
            with source.open("w", encoding="utf-8") as copy:
                for number, text in bounded_lines(log):
                    if text is None:
                        skipped.add(f"line {number}", f"longer than {MAX_LINE_CHARS} characters")
                    else:
                        copy.write(text)
        try:
            with can.LogReader(source, **options) as reader:
                for index, msg in enumerate(reader):
                    yield f"frame {index + 1}", msg
        except ExcapError:
            raise
        except Exception as exc:  # readers raise anything from ValueError to struct.error on foreign files
            raise ExcapError(f"{log}: cannot read CAN log ({one_line(exc)})") from exc


def read_valid_messages(log: Path, skipped: SkippedFrames) -> Iterator[can.Message]:
    """Every valid message of a log file, in file order; invalid ones are counted in `skipped`."""
    if not log.is_file():
        raise ExcapError(f"{log}: no such file")
    suffix = _text_suffix(log)
    with _quiet_python_can():
        source = _line_messages(log, LINE_READERS[suffix], skipped) if suffix in LINE_READERS \
            else _whole_file_messages(log, skipped)
        for where, msg in source:
            problem = message_problem(msg)
            if problem:
                skipped.add(where, problem)
            else:
                yield msg


__all__ = ["MAX_LINE_CHARS", "SkippedFrames", "bounded_lines", "message_problem", "read_valid_messages"]
