"""Command-line parts of delivery: `excap partner ...`, `excap serve`, `excap push` and `excap pull`.

Each `add_*_parser(commands)` adds one sub-command to the `excap` parser's sub-parsers and returns it; the
matching `cmd_*(args)` runs it and returns the exit status. Heavy imports (FastAPI, uvicorn, boto3) happen only
when a command runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from excap.catalogue.store import add_catalog_option
from excap.core.errors import ExcapError
from excap.core.extras import require_extra
from excap.delivery.partners import PartnerStore

if TYPE_CHECKING:
    from excap.delivery.s3sync import SyncOptions

DEFAULT_PORT = 8750


def add_partner_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    folder = argparse.ArgumentParser(add_help=False)
    folder.add_argument("--dir", type=Path, default=Path("."), metavar="DIR",
                        help="delivery folder holding exports/ and .excap/ (default: the current folder)")
    partner = commands.add_parser("partner", help="delivery partners: tokens and dataset grants")
    actions = partner.add_subparsers(dest="partner_command", required=True, metavar="ACTION")
    add = actions.add_parser("add", parents=[folder], help="add a partner and print its new token (shown only once)")
    add.add_argument("name")
    grant = actions.add_parser("grant", parents=[folder], help="let a partner download DIR/exports/DATASET")
    grant.add_argument("name")
    grant.add_argument("dataset")
    revoke = actions.add_parser("revoke", parents=[folder],
                                help="remove one grant, or without DATASET disable the partner's token")
    revoke.add_argument("name")
    revoke.add_argument("dataset", nargs="?")
    listing = actions.add_parser("list", parents=[folder], help="partners, token ids, state and grants")
    listing.add_argument("--json", action="store_true")
    return partner


def cmd_partner(args: argparse.Namespace) -> int:
    store = PartnerStore(args.dir)
    action = args.partner_command
    if action == "add":
        token = store.add(args.name)
        print(token)
        print(f"partner {args.name!r} added; the token above is shown only once: hand it over securely",
              file=sys.stderr)
    elif action == "grant":
        store.grant(args.name, args.dataset)
        if not (Path(args.dir) / "exports" / args.dataset).is_dir():
            print(f"note: {Path(args.dir) / 'exports' / args.dataset} does not exist yet", file=sys.stderr)
        print(f"granted {args.dataset!r} to {args.name!r}")
    elif action == "revoke":
        store.revoke(args.name, args.dataset)
        print(f"revoked {args.dataset!r} from {args.name!r}" if args.dataset
              else f"revoked partner {args.name!r}: its token no longer works")
    else:
        partners = store.partners()
        if args.json:
            print(json.dumps([{**asdict(p), "active": p.active} for p in partners], indent=2))
        else:
            for p in partners:
                state = "active" if p.active else f"revoked {p.revoked_at}"
                print(f"{p.name}\ttoken {p.token_id}\tcreated {p.created_at}\t{state}\t"
                      f"grants: {', '.join(p.grants) or '-'}")
    return 0


def add_serve_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    serve = commands.add_parser("serve", help="serve granted exports and episodes to partners over HTTP")
    serve.add_argument("dir", type=Path, metavar="DIR")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default: %(default)s; 0: any free)")
    serve.add_argument("--allow-remote", action="store_true",
                       help="allow a non-loopback --host (put TLS in front, or use --ssl-certfile/--ssl-keyfile)")
    serve.add_argument("--ssl-certfile", type=Path, default=None, metavar="PEM")
    serve.add_argument("--ssl-keyfile", type=Path, default=None, metavar="PEM")
    serve.add_argument("--allow-host", action="append", default=[], metavar="NAME[:PORT]",
                       help="a further name clients reach the server by (repeatable; e.g. the public name behind a "
                            "reverse proxy); requests naming any other host are refused")
    add_catalog_option(serve)
    return serve


def cmd_serve(args: argparse.Namespace) -> int:
    require_extra("serve", "delivery", "pyarrow")  # reads which episodes a LeRobot export holds
    from excap.delivery.serve import ServerOptions, serve
    from excap.web.server import is_loopback

    options = ServerOptions(root=args.dir, host=args.host, port=args.port, allow_remote=args.allow_remote,
                            ssl_certfile=args.ssl_certfile, ssl_keyfile=args.ssl_keyfile,
                            allowed_hosts=tuple(args.allow_host), catalog=args.catalog)
    options.check()
    if not is_loopback(args.host):
        print(f"warning: listening on {args.host}, reachable from other machines"
              + ("" if args.ssl_certfile else " without TLS: tokens and data travel in clear text"), file=sys.stderr)

    def listening(url: str) -> None:
        print(f"serving {args.dir} on {url} (access log: {args.dir / '.excap' / 'access.log'})", flush=True)

    serve(options, on_listening=listening)
    return 0


def _add_s3_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--endpoint-url", default=None, metavar="URL", help="S3-compatible endpoint")
    parser.add_argument("--region", default=None, help="default: from the AWS environment or config")
    parser.add_argument("--profile", default=None, help="AWS config profile")
    parser.add_argument("--multipart-threshold-mb", type=int, default=64, metavar="MB",
                        help="multipart transfers above this size (default: %(default)s)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_push_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    push = commands.add_parser("push", help="upload episodes (*.h5) and exports/ to S3, verified by SHA-256")
    push.add_argument("dir", type=Path, metavar="DIR")
    push.add_argument("target", metavar="s3://BUCKET/PREFIX")
    _add_s3_options(push)
    return push


def add_pull_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    pull = commands.add_parser("pull", help="download episodes (*.h5) and exports/ from S3, verified by SHA-256")
    pull.add_argument("source", metavar="s3://BUCKET/PREFIX")
    pull.add_argument("dir", type=Path, metavar="DIR")
    _add_s3_options(pull)
    return pull


def _sync_options(args: argparse.Namespace) -> SyncOptions:
    from excap.delivery.s3sync import MiB, SyncOptions

    if args.multipart_threshold_mb < 5:
        raise ExcapError("--multipart-threshold-mb must be at least 5 (the S3 minimum part size)")
    return SyncOptions(endpoint_url=args.endpoint_url, region=args.region, profile=args.profile,
                       multipart_threshold=args.multipart_threshold_mb * MiB,
                       progress=not args.no_progress and sys.stderr.isatty())


def cmd_push(args: argparse.Namespace) -> int:
    require_extra("push", "delivery", "boto3", "botocore")
    from excap.delivery.s3sync import push

    report = push(args.dir, args.target, _sync_options(args))
    print(f"push {args.dir} -> {args.target}: {report.text('uploaded')}")
    return 0


def cmd_pull(args: argparse.Namespace) -> int:
    require_extra("pull", "delivery", "boto3", "botocore")
    from excap.delivery.s3sync import pull

    report = pull(args.source, args.dir, _sync_options(args))
    print(f"pull {args.source} -> {args.dir}: {report.text('downloaded')}")
    return 0


def cmd_index_remote(target: str, catalog: str | None, rebuild: bool, as_json: bool, parallel: int = 4) -> int:
    """`excap index s3://BUCKET/PREFIX`: the prefix's episodes written into the catalogue, each read with ranged reads
    of its metadata; the bytes and requests each took. The endpoint and credentials come from the standard boto3
    chain (e.g. AWS_ENDPOINT_URL, AWS_PROFILE)."""
    require_extra("index", "delivery", "boto3", "botocore")
    from excap.catalogue.remote import prefix_source
    from excap.delivery.remote_index import index_prefix

    if parallel < 1:
        raise ExcapError(f"--parallel must be at least 1, not {parallel}")
    report = index_prefix(target, catalog, rebuild=rebuild, parallel=parallel)
    source = prefix_source(target)
    for path, problem in report.unreadable:
        print(f"excap: warning: {source}/{path}: skipped: {problem}", file=sys.stderr)
    if as_json:
        print(json.dumps(report.as_json(), indent=2))
        return 0
    for path, (read, requests) in sorted(report.reads.items()):
        print(f"{path}\tread {read / 1e3:.1f} kB of {report.sizes[path] / 1e6:.1f} MB in {requests} requests")
    read_total = sum(read for read, _ in report.reads.values())
    print(f"{source}: {report.text()}; read {read_total / 1e3:.1f} kB in "
          f"{sum(requests for _, requests in report.reads.values())} requests for {len(report.reads)} objects")
    return 0
