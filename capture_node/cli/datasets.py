"""Command-line parts of `excap index`, `excap list` and `excap export`.

`add_index_parser`, `add_list_parser` and `add_export_parser` add the subcommands to excap's subparsers;
`COMMANDS` maps their names to `cmd_*` functions (exit status; ExcapError becomes `excap: error: ...`).
`python -m excap.cli.datasets` runs the three on their own.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from excap.catalogue.index import Catalogue, EpisodeFilter, records_table, stderr_warning
from excap.catalogue.remote import is_object_store, prefix_source
from excap.catalogue.store import add_catalog_option, chosen_catalog, is_postgres
from excap.cli.engine_options import add_engine_arguments, engine_options
from excap.core.errors import ConfigError, ExcapError
from excap.core.extras import require_extra
from excap.datasets.selection import DEFAULT_PARTNER

if TYPE_CHECKING:
    from excap.datasets.export.fetched import FetchedEpisodes
    from excap.datasets.frames import SkippedEpisode

FORMATS = ("lerobot", "robomimic")


def _add_filters(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("episode filters (all must match)")
    group.add_argument("--machine-kind", default=None, help="excavator or wheel_loader")
    group.add_argument("--machine-model", default=None)
    group.add_argument("--site", default=None)
    group.add_argument("--task", default=None)
    group.add_argument("--operator", default=None, metavar="OPERATOR_ID")
    group.add_argument("--outcome", default=None, choices=["success", "failure", "aborted", "unlabeled"])
    group.add_argument("--since", default=None, metavar="DATE[THH:MM[:SS]]",
                       help="started at or after (UTC; a date alone means its midnight)")
    group.add_argument("--until", default=None, metavar="DATE[THH:MM[:SS]]",
                       help="started at or before (UTC; a date alone includes that whole day)")
    group.add_argument("--min-duration", type=float, default=None, metavar="S")
    group.add_argument("--max-duration", type=float, default=None, metavar="S")


def filter_from_args(args: argparse.Namespace, valid: bool | None = None) -> EpisodeFilter:
    return EpisodeFilter(machine_kind=args.machine_kind, machine_model=args.machine_model, site=args.site,
                         task=args.task, operator_id=args.operator, outcome=args.outcome, since=args.since,
                         until=args.until, min_duration=args.min_duration, max_duration=args.max_duration,
                         valid=valid)


def add_index_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = commands.add_parser("index", help="update the episode catalogue of a folder (DIR/.excap/catalogue.sqlite) "
                                 "or of an object-store prefix s3://BUCKET/PREFIX (into --catalog)")
    parser.add_argument("directory", type=Path, metavar="DIR|s3://BUCKET/PREFIX")
    parser.add_argument("--rebuild", action="store_true", help="forget the catalogue and read every file again")
    parser.add_argument("--parallel", type=int, default=4, metavar="N",
                        help="(s3://) objects read at once (default: %(default)s)")
    add_catalog_option(parser)
    parser.add_argument("--json", action="store_true", help="report as JSON")
    return parser


def add_list_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = commands.add_parser("list", help="list catalogued episodes, filtered (updates a folder's catalogue first)")
    parser.add_argument("directory", type=Path, metavar="DIR|s3://BUCKET/PREFIX")
    _add_filters(parser)
    parser.add_argument("--valid-only", action="store_true", help="only episodes that pass excap validate")
    add_catalog_option(parser)
    parser.add_argument("--fleet", action="store_true",
                        help="(shared catalogue) list the episodes of every folder in it, not only DIR's")
    parser.add_argument("--json", action="store_true", help="JSON list for scripts")
    return parser


def _image_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 84x84, not {text!r}") from exc
    if width <= 0 or height <= 0:
        raise argparse.ArgumentTypeError(f"image size must be positive, not {text!r}")
    return width, height


def _output(text: str) -> Path | str:
    """--out: a local path, or an s3:// address kept as text."""
    return text if text.startswith("s3://") else Path(text)


def add_export_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = commands.add_parser("export", help="export consented episodes as a LeRobot v3.0 or robomimic dataset")
    parser.add_argument("directory", type=Path, metavar="DIR|s3://BUCKET/PREFIX")
    parser.add_argument("--format", choices=FORMATS, required=True)
    parser.add_argument("--out", type=_output, required=True, metavar="OUT",
                        help="dataset folder (lerobot), or .hdf5 file or folder (robomimic); or s3://BUCKET/PREFIX "
                        "(the same, assembled in a temporary folder and uploaded with SHA-256 metadata)")
    parser.add_argument("--fps", type=int, default=10, help="step rate of the aligned frames (default: %(default)s)")
    parser.add_argument("--partner", default=DEFAULT_PARTNER,
                        help="partner id: operators get pseudonyms stable for this partner (default: %(default)s)")
    parser.add_argument("--operators", type=Path, default=None, metavar="OPERATORS.yaml",
                        help="operator registry (default: DIR/.excap/operators.yaml; needed for s3:// without "
                        "--cache, the pseudonym secret is then the one in the registry's folder)")
    parser.add_argument("--blur-faces", action="store_true", help="blur people's faces in camera frames")
    parser.add_argument("--vcodec", default=None, help="(lerobot) video codec: libsvtav1 (default; smallest, LeRobot's "
                        "default) or libx264 (fastest); see docs/exports.md")
    parser.add_argument("--append", action="store_true",
                        help="(lerobot) add the selected episodes that OUT's export does not hold yet, keeping its "
                        "data and video files (same settings needed)")
    parser.add_argument("--image-size", type=_image_size, default=None, metavar="WxH",
                        help="(robomimic) resize camera images")
    parser.add_argument("--valid-ratio", type=float, default=None, metavar="R",
                        help="(robomimic) share of demos in mask/valid, at least one when there are two or more "
                        "(default: 0.1)")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--strict", action="store_true",
                        help="fail on an episode that cannot be exported with the others "
                        "(default: skip it, say so, go on)")
    add_catalog_option(parser)
    parser.add_argument("--cache", type=Path, default=None, metavar="DIR",
                        help="(s3://) copy the selected episodes into this folder first, verified by SHA-256 "
                        "and reused by later exports (needs --catalog); default: no copy on this machine, each "
                        "episode task downloads its own episode on its worker (see docs/exports.md)")
    _add_filters(parser)
    add_engine_arguments(parser)
    return parser


def cmd_index(args: argparse.Namespace) -> int:
    """Files that cannot be read are skipped with one warning line each; invalid episodes get one line each."""
    if is_object_store(args.directory):  # an object store: metadata only, with ranged reads
        from excap.cli.delivery import cmd_index_remote

        return cmd_index_remote(prefix_source(args.directory), args.catalog, args.rebuild, args.json, args.parallel)
    with Catalogue(args.directory, catalog=args.catalog) as catalogue:
        report = catalogue.update(rebuild=args.rebuild, warn=stderr_warning)
        invalid = catalogue.records(EpisodeFilter(valid=False))
    for record in invalid:
        first = record.problems[0] if record.problems else "invalid"
        more = f" (and {len(record.problems) - 1} more)" if len(record.problems) > 1 else ""
        print(f"excap: warning: {first}{more}", file=sys.stderr)
    if args.json:
        print(json.dumps({"added": report.added, "updated": report.updated, "removed": report.removed,
                          "unchanged": report.unchanged, "invalid": [r.path for r in invalid],
                          "skipped": [{"path": path, "problem": problem} for path, problem in report.unreadable]},
                         indent=2))
    else:
        print(f"{args.directory}: {report.text()}" + (f"; {len(invalid)} invalid" if invalid else ""))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    selection = filter_from_args(args, valid=True if args.valid_only else None).check()
    if args.fleet and not is_postgres(chosen_catalog(args.catalog)):
        raise ConfigError("--fleet needs a shared catalogue: --catalog postgresql://... (or EXCAP_CATALOG)")
    if is_object_store(args.directory):  # the rows `excap index s3://...` wrote; nothing is read from the store
        from excap.catalogue.backends import open_prefix_store

        store = open_prefix_store(prefix_source(args.directory), args.catalog)
        try:
            records = store.records(selection, everywhere=args.fleet)
        finally:
            store.close()
    else:
        with Catalogue(args.directory, catalog=args.catalog) as catalogue:
            catalogue.update(warn=stderr_warning)
            records = catalogue.records(selection, everywhere=args.fleet)
    if args.json:
        print(json.dumps([r.as_json() for r in records], indent=2))
    else:
        print(records_table(records))
    return 0


def _say_skipped(skipped: SkippedEpisode) -> None:
    print(f"excap export: {skipped.line()}", file=sys.stderr, flush=True)


def cmd_export(args: argparse.Namespace) -> int:
    require_extra("export", "exports", "pyarrow", "pandas", "av", *(["skimage"] if args.blur_faces else []))
    selection = filter_from_args(args)
    progress = not args.no_progress and sys.stderr.isatty()
    fetched: FetchedEpisodes | None = None
    if is_object_store(args.directory) and args.cache is None:  # planned from metadata, each task fetches its own
        require_extra("export", "delivery", "boto3", "botocore")
        from excap.cluster.remote_export import remote_episodes

        fetched, reads = remote_episodes(prefix_source(args.directory), selection.check(), args.partner,
                                         args.operators, args.catalog)
        for path, problem in reads.unreadable:
            print(f"excap: warning: {path}: skipped, {problem}", file=sys.stderr)
        print(reads.line(prefix_source(args.directory)), file=sys.stderr)
    elif is_object_store(args.directory):  # --cache: the selected episodes copied there, then exported from there
        require_extra("export", "delivery", "boto3", "botocore")
        from excap.delivery.remote_fetch import fetch_selection

        cached = fetch_selection(prefix_source(args.directory), selection.check(), args.catalog, args.cache)
        print(f"{cached.folder}: {len(cached.fetched)} episodes fetched ({cached.bytes / 1e6:.1f} MB), "
              f"{len(cached.reused)} reused", file=sys.stderr)
        args.directory, args.catalog = cached.folder, None
    with ExitStack() as stack:
        target = args.out if isinstance(args.out, str) else None
        if target is not None:
            require_extra("export", "delivery", "boto3", "botocore")
            if args.append:
                raise ConfigError("--append adds to an export in a folder: --out must be a folder for it")
            staging = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="excap-export-")))
            name = target.rstrip("/").rsplit("/", 1)[-1]
            file_out = args.format == "robomimic" and Path(name).suffix in (".hdf5", ".h5")
            args.out = staging / name if file_out else staging / "dataset"
            upload_from, upload_to = (staging, target.rstrip("/").rsplit("/", 1)[0]) if file_out \
                else (args.out, target)
        result = _export(args, selection, progress, stack, fetched)
        if target is not None:
            from excap.cluster.export_parts import upload_dataset

            stored = upload_dataset(upload_from, upload_to)
            print(f"{target}: {len(stored)} files uploaded", file=sys.stderr)
            result.out = target
    excluded = ", ".join(f"{k}={v}" for k, v in sorted(result.excluded.items())) or "none"
    resumed = f" ({result.resumed_episodes} done before)" if result.resumed_episodes else ""
    resumed += f" ({result.appended_episodes} added)" if result.appended_episodes else ""
    skipped = f"; skipped {len(result.skipped)}: " + ", ".join(s.episode_id for s in result.skipped) \
        if result.skipped else ""
    print(f"{result.out}: {result.episodes} episodes{resumed}, {result.frames} frames; left out: {excluded}{skipped}"
          + (f"; {result.faces_blurred} faces blurred" if args.blur_faces else ""))
    return 0


def _export(args: argparse.Namespace, selection: EpisodeFilter, progress: bool, stack: ExitStack,
            fetched: FetchedEpisodes | None) -> Any:
    """The export itself, into the local `args.out` (engines it starts stay open in `stack`); `fetched`: the
    episodes of an object-store prefix, fetched by their tasks."""
    if args.format == "lerobot":
        from excap.datasets.export.lerobot import LeRobotExportOptions, export_lerobot

        if args.image_size is not None or args.valid_ratio is not None:
            raise ConfigError("--image-size and --valid-ratio apply to --format robomimic only")
        map_parts = _map_parts(args, stack)
        return export_lerobot(args.directory, LeRobotExportOptions(
            out=args.out, fps=args.fps, partner=args.partner, selection=selection, blur_faces=args.blur_faces,
            vcodec=args.vcodec, registry=args.operators, progress=progress, strict=args.strict,
            on_skip=_say_skipped, catalog=args.catalog, append=args.append, map_parts=map_parts, fetched=fetched))
    if args.append:
        raise ConfigError("--append applies to --format lerobot only")
    from excap.datasets.export.robomimic import RobomimicExportOptions, export_robomimic

    return export_robomimic(args.directory, RobomimicExportOptions(
        out=args.out, fps=args.fps, partner=args.partner, selection=selection, blur_faces=args.blur_faces,
        image_size=args.image_size, registry=args.operators, progress=progress, strict=args.strict,
        on_skip=_say_skipped, catalog=args.catalog, map_parts=_map_parts(args, stack), fetched=fetched,
        **({} if args.valid_ratio is None else {"valid_ratio": args.valid_ratio})))


def _map_parts(args: argparse.Namespace, stack: ExitStack) -> Any:
    """The export's per-episode tasks on the engine the flags choose (its executor closed with `stack`); None
    runs them in this process (no flags, or --workers 1 without --engine)."""
    engine = engine_options(args)
    if engine.engine == "serial" or (engine.engine == "processes" and engine.workers <= 1 and args.engine is None):
        return None
    from excap.cluster.export_parts import parts_map
    from excap.cluster.options import make_executor

    return parts_map(stack.enter_context(make_executor(engine, "export")), engine.retries)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {"index": cmd_index, "list": cmd_list, "export": cmd_export}


def add_dataset_parsers(commands: argparse._SubParsersAction) -> None:
    add_index_parser(commands)
    add_list_parser(commands)
    add_export_parser(commands)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="excap", description="Episode catalogue and dataset exports.")
    add_dataset_parsers(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except ExcapError as exc:
        print(f"excap: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
