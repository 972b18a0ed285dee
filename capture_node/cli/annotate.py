"""`excap annotate`: propose work phases for an episode, let an engineer correct them, store them.

    excap annotate EPISODE                         # table of the proposal; writes EPISODE_ID.phases.json to edit
    excap annotate EPISODE --accept                # store the proposal, status accepted
    excap annotate EPISODE --edit FILE.json        # store the corrected spans of FILE.json, status accepted
    excap annotate EPISODE --reject --reason TEXT  # mark the episode rejected (keeps the spans it has)

Times in the JSON file are seconds from the episode start (`start_s`, `end_s`); spans must be in order and
must not overlap. A stored span whose times (to the millisecond) and label equal a proposed span has source
`proposed`, any other `engineer`.
"""

from __future__ import annotations

import argparse
import getpass
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from excap.core.errors import EpisodeError, ExcapError

if TYPE_CHECKING:
    from excap.episode.annotations import AnnotationSpan
    from excap.review.phases import Marker, Phase

MATCH_TOLERANCE_NS = 1_000_000


def _seconds(t_ns: int, start_ns: int) -> float:
    return round((t_ns - start_ns) / 1e9, 3)


def proposal_table(phases: list[Phase], marks: list[Marker], start_ns: int) -> str:
    """The proposal for people: one line per phase, with the markers that fall into it."""
    lines = [f"{'start s':>8}  {'end s':>8}  {'length':>7}  {'label':<13}  {'conf':>5}  markers"]
    for phase in phases:
        inside = [m for m in marks if phase.t_start_ns <= m.t_ns < phase.t_end_ns]
        text = ", ".join(f"{_seconds(m.t_ns, start_ns):.1f}s {m.detail.get('label') or m.detail.get('text') or ''}"
                         .rstrip() for m in inside)
        lines.append(f"{_seconds(phase.t_start_ns, start_ns):>8.1f}  {_seconds(phase.t_end_ns, start_ns):>8.1f}  "
                     f"{phase.duration_s:>6.1f}s  {phase.label:<13}  {phase.confidence:>5.2f}  {text}".rstrip())
    if marks:
        lines.append("markers: " + ", ".join(f"{_seconds(m.t_ns, start_ns):.2f}s {json.dumps(m.detail, sort_keys=True)}"
                                             for m in marks))
    return "\n".join(lines)


def edit_document(metadata: dict[str, Any], phases: list[Phase], marks: list[Marker]) -> dict[str, Any]:
    from excap.review.phases import labels_of

    start_ns = int(metadata.get("start_t_ns", 0))
    return {
        "episode_id": metadata.get("episode_id", ""),
        "help": "Edit start_s / end_s (seconds from the episode start) and label, add or remove entries, then run "
                "excap annotate EPISODE --edit THIS_FILE. Spans must be in order and must not overlap.",
        "labels": list(labels_of(str(metadata.get("machine_kind", "excavator")))),
        "duration_s": float(metadata.get("duration_s", 0.0)),
        "phases": [{"start_s": _seconds(p.t_start_ns, start_ns), "end_s": _seconds(p.t_end_ns, start_ns),
                    "label": p.label, "confidence": p.confidence} for p in phases],
        "markers": [{"t_s": _seconds(m.t_ns, start_ns), "detail": m.detail} for m in marks],
    }


def spans_from_document(document: Any, metadata: dict[str, Any], proposal: list[Phase],
                        where: str = "edit file") -> list[AnnotationSpan]:
    """The spans of an edited document, checked, as absolute times; unchanged proposed spans keep their times."""
    from excap.episode.annotations import AnnotationSpan
    from excap.review.phases import labels_of

    labels = labels_of(str(metadata.get("machine_kind", "excavator")))
    if not isinstance(document, dict) or not isinstance(document.get("phases"), list):
        raise ExcapError(f"{where}: expected an object with a 'phases' list")
    if document.get("episode_id") not in (None, "", metadata.get("episode_id")):
        raise ExcapError(f"{where}: written for episode {document['episode_id']!r}, not {metadata.get('episode_id')!r}")
    start_ns = int(metadata.get("start_t_ns", 0))
    end_ns = int(metadata.get("end_t_ns", start_ns))
    spans: list[AnnotationSpan] = []
    for index, entry in enumerate(document["phases"]):
        key = f"{where}: phases[{index}]"
        if not isinstance(entry, dict) or not all(k in entry for k in ("start_s", "end_s", "label")):
            raise ExcapError(f"{key}: needs start_s, end_s and label")
        if entry["label"] not in labels:
            raise ExcapError(f"{key}: label {entry['label']!r} is not one of {', '.join(labels)} (the phases of "
                             f"a {metadata.get('machine_kind', 'excavator')})")
        try:
            first = start_ns + round(float(entry["start_s"]) * 1e9)
            last = start_ns + round(float(entry["end_s"]) * 1e9)
        except (TypeError, ValueError) as exc:
            raise ExcapError(f"{key}: start_s and end_s must be numbers") from exc
        if last <= first:
            raise ExcapError(f"{key}: ends ({entry['end_s']}) before it starts ({entry['start_s']})")
        if first < start_ns - MATCH_TOLERANCE_NS or last > end_ns + MATCH_TOLERANCE_NS:
            raise ExcapError(f"{key}: lies outside the episode (0 .. {(end_ns - start_ns) / 1e9:.3f} s)")
        if spans and first < spans[-1].t_end_ns - MATCH_TOLERANCE_NS:
            raise ExcapError(f"{key}: starts before the previous span ends (spans must be in order, not overlapping)")
        same = next((p for p in proposal if p.label == entry["label"]
                     and abs(p.t_start_ns - first) <= MATCH_TOLERANCE_NS
                     and abs(p.t_end_ns - last) <= MATCH_TOLERANCE_NS), None)
        if same is not None:
            spans.append(AnnotationSpan(same.t_start_ns, same.t_end_ns, same.label, "proposed"))
        else:
            spans.append(AnnotationSpan(first, last, str(entry["label"]), "engineer"))
    return spans


def add_annotate_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = commands.add_parser("annotate", help="propose work phases of an episode; accept, edit or reject them")
    parser.add_argument("episode", type=Path)
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--accept", action="store_true", help="store the proposal as the accepted annotation")
    action.add_argument("--edit", type=Path, metavar="FILE.json", help="store the corrected spans of FILE.json")
    action.add_argument("--reject", action="store_true", help="mark the episode rejected (see --reason)")
    parser.add_argument("--author", default=None, help="who annotated (default: the login name)")
    parser.add_argument("--reason", default="", help="why (stored with the annotation; expected with --reject)")
    parser.add_argument("--out", type=Path, default=None, metavar="FILE.json",
                        help="where to write the proposal to edit (default: EPISODE_ID.phases.json here)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    return parser


def cmd_annotate(args: argparse.Namespace) -> int:
    import h5py

    from excap.episode.annotations import AnnotationSpan, read_annotation, recover_annotation, store_annotation
    from excap.episode.reader import EpisodeReader
    from excap.episode.validation import annotation_problems
    from excap.review.phases import markers, propose_phases

    with EpisodeReader(args.episode):
        pass  # refuse (one EpisodeError line) a file readers cannot read before anything is written to it
    if recover_annotation(args.episode):
        print(f"{args.episode}: applied an annotation left by an interrupted write")
    with EpisodeReader(args.episode) as reader:
        metadata = dict(reader.metadata)
        proposal = propose_phases(reader)
        marks = markers(reader)
    author = args.author or getpass.getuser()
    if args.accept or args.edit or args.reject:
        with h5py.File(args.episode, "r") as handle:  # readable: EpisodeReader opened it above
            damaged = annotation_problems(handle)
        if damaged:
            raise EpisodeError(f"{args.episode}: its annotation is damaged ({damaged[0]}); excap validate lists "
                               "what is wrong")
        if args.edit:
            try:
                document = json.loads(args.edit.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ExcapError(f"{args.edit}: cannot read ({exc})") from exc
            spans = spans_from_document(document, metadata, proposal, str(args.edit))
        elif args.reject and (current := read_annotation(args.episode)) is not None:
            spans = current.spans
        else:
            spans = [AnnotationSpan(p.t_start_ns, p.t_end_ns, p.label, "proposed") for p in proposal]
        stored = store_annotation(args.episode, spans, author, "rejected" if args.reject else "accepted",
                                  reason=args.reason)
        edited = sum(s.source == "engineer" for s in stored.spans)
        print(f"{args.episode}: annotation revision {stored.revision} {stored.status} by {stored.author} "
              f"({len(stored.spans)} spans, {edited} edited)")
        return 0
    print(proposal_table(proposal, marks, int(metadata.get("start_t_ns", 0))))
    out = args.out or Path(f"{metadata.get('episode_id') or args.episode.stem}.phases.json")
    if out.exists() and not args.force:
        raise ExcapError(f"{out}: already exists (an edit in progress?); use --force or --out")
    out.write_text(json.dumps(edit_document(metadata, proposal, marks), indent=1) + "\n", encoding="utf-8")
    print(f"wrote {out}: edit it and run `excap annotate {args.episode} --edit {out}`, or use --accept")
    return 0
