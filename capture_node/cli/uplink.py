"""`excap upload DIR s3://BUCKET/PREFIX`: the station uplink (see excap.uplink), and `excap upload DIR --status`."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from excap.core.errors import ConfigError
from excap.core.extras import require_extra
from excap.uplink.state import load_uploader

MiB = 1 << 20


def add_upload_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    upload = commands.add_parser("upload", help="upload finished episodes to S3: resumable, verified by SHA-256, "
                                                "with an optional retention policy")
    upload.add_argument("dir", type=Path, metavar="DIR", help="the station's episode folder")
    upload.add_argument("target", nargs="?", metavar="s3://BUCKET/PREFIX", help="where episodes go")
    upload.add_argument("--once", action="store_true", help="one pass, then exit (default: keep watching DIR)")
    upload.add_argument("--interval", type=float, default=30.0, metavar="S",
                        help="seconds between passes when watching (default: %(default)s)")
    upload.add_argument("--status", action="store_true", help="show what is pending and the last error, then exit")
    upload.add_argument("--json", action="store_true", help="with --status or --once: print JSON")
    upload.add_argument("--endpoint-url", default=None, metavar="URL", help="S3-compatible endpoint")
    upload.add_argument("--region", default=None)
    upload.add_argument("--profile", default=None, help="AWS profile (default: the standard credential chain)")
    upload.add_argument("--part-size-mb", type=float, default=8.0, metavar="MB",
                        help="multipart part size in MiB (S3 needs at least 5; default: %(default)s)")
    upload.add_argument("--parallel", type=int, default=4, metavar="N",
                        help="parts in flight at once (default: %(default)s)")
    upload.add_argument("--max-rate", default=None, metavar="RATE", help="bandwidth cap, e.g. 2MB/s")
    upload.add_argument("--verify", choices=("head", "full"), default="head",
                        help="head: size and SHA-256 metadata; full: also read the object back (default: head)")
    upload.add_argument("--retries", type=int, default=8, metavar="N",
                        help="tries of one request on connection errors and 5xx, with backoff (default: 8)")
    upload.add_argument("--backoff-max", type=float, default=15.0, metavar="S",
                        help="longest wait between two tries, in seconds (default: %(default)s)")
    upload.add_argument("--delete-after-upload", action="store_true",
                        help="delete each local episode once its remote copy is verified")
    upload.add_argument("--keep-days", type=float, default=None, metavar="N",
                        help="delete verified local episodes older than N days")
    upload.add_argument("--keep-free-gb", type=float, default=None, metavar="G",
                        help="delete verified local episodes, oldest first, until G GB are free")
    return upload


def cmd_upload(args: argparse.Namespace) -> int:
    if not Path(args.dir).is_dir():
        raise ConfigError(f"{args.dir}: no such folder")
    if args.status:
        return _status(args)
    if not args.target:
        raise ConfigError("excap upload needs s3://BUCKET[/PREFIX] (or --status)")
    require_extra("upload", "delivery", "boto3", "botocore")
    from excap.core.s3_location import S3Location
    from excap.uplink.ratelimit import parse_rate
    from excap.uplink.retention import RetentionPolicy
    from excap.uplink.retry import RetryPolicy
    from excap.uplink.runner import UplinkOptions, run_loop, run_pass
    from excap.uplink.transfer import TransferOptions

    S3Location.parse(args.target)
    if args.part_size_mb <= 0 or args.retries < 1 or args.interval <= 0 or args.parallel < 1 or args.backoff_max <= 0:
        raise ConfigError("--part-size-mb, --parallel, --retries, --backoff-max and --interval must be positive")
    for name in ("keep_days", "keep_free_gb"):
        if getattr(args, name) is not None and getattr(args, name) < 0:
            raise ConfigError(f"--{name.replace('_', '-')} must not be negative")
    options = UplinkOptions(
        target=args.target,
        transfer=TransferOptions(endpoint_url=args.endpoint_url, region=args.region, profile=args.profile,
                                 part_size=int(args.part_size_mb * MiB), parallel=args.parallel,
                                 verify=args.verify,
                                 retry=RetryPolicy(attempts=args.retries, cap_s=args.backoff_max)),
        retention=RetentionPolicy(args.delete_after_upload, args.keep_days, args.keep_free_gb),
        max_rate=parse_rate(args.max_rate) if args.max_rate else None)

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    if args.once:
        report = run_pass(args.dir, options, log)
        print(json.dumps(report.to_json()) if args.json else f"upload {args.dir} -> {args.target}: {report.text()}")
        return 1 if report.failed else 0
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    run_loop(args.dir, options, args.interval, stop, log)
    return 0


def _status(args: argparse.Namespace) -> int:
    from excap.uplink.status import summary

    state = summary(args.dir)
    if args.json:
        print(json.dumps({**state.to_json(), "target": load_uploader(args.dir).target}))
    else:
        print(state.line())
    return 0
