"""``python -m sandbox``: run the product's pipelines locally.

Exit codes: 0 success; 1 a run completed with failures or stopped, or failed; 2 usage (a bad flag or
setting, a file that cannot be read, a missing dependency or credentials); 128 + N ended by signal N.
A mistake is one line on stderr saying what and how to fix it; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import sys
import tempfile
import time
import traceback
import urllib.parse
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TextIO


def main(argv: list[str] | None = None) -> int:
    _stop_on_signals()
    # Powertools warns when an invocation emitted no metric (a run that read nothing): on Lambda it
    # goes to the log; here it would be two lines of library noise among the command's own.
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    # Handlers log and emit metrics on stdout, as on Lambda; here stdout belongs to the result.
    out = sys.stdout
    sys.stdout = sys.stderr
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    try:
        return _main(argv, out)
    except KeyboardInterrupt:
        print("interrupted: every service the sandbox started was stopped", file=sys.stderr)
        return 130
    except Exception as exc:
        code, line = _mistake(exc)
        if debug:
            traceback.print_exc()
        hint = " (--debug shows the traceback)" if code == 1 and not debug else ""
        print(f"error: {line}{hint}", file=sys.stderr)
        return code
    finally:
        sys.stdout = out


_INSTALL = "run `make demo` once (it installs everything into .venv) and use .venv/bin/python -m sandbox"
# The importer's settings as the flags that set them, for its own messages.
_FLAGS = {
    "AMBIGUOUS_POLICY": "--ambiguous", "MAX_IN_FLIGHT": "--max-in-flight",
    "WORKSPACE_REQUESTS_PER_SECOND": "--workspace-requests-per-second",
    "REQUESTS_PER_SECOND": "--requests-per-second", "BATCH_RULE": "--batch-rule", "CSV_TYPE_CAST": "--csv-type-cast",
}  # fmt: skip


_AWS_SETUP = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")


class UsageError(Exception):
    """A mistake in how the command was called: exit 2, this message alone."""


def _mistake(exc: Exception) -> tuple[int, str]:
    """The exit code and the one line for an error: what went wrong and, where known, how to fix it."""
    from .services import ServiceError

    message = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
    if isinstance(exc, UsageError):
        return 2, message
    if isinstance(exc, ModuleNotFoundError):
        return 2, f"{message}: {_INSTALL}"
    if isinstance(exc, ServiceError):
        return (2, message) if exc.usage else (1, message)
    if isinstance(exc, OSError) and exc.filename:
        return 2, f"{exc.filename}: {exc.strerror}"
    if type(exc).__name__ == "SettingsError":  # a function's settings refused at its cold start
        for name, flag in _FLAGS.items():
            message = re.sub(rf"\b{name}\b", flag, message)
        return 2, message
    if type(exc).__name__ == "ProfileNotFound":
        return 2, f"{message}: set AWS_PROFILE to one of `aws configure list-profiles`, or unset it"
    if type(exc).__name__ in ("NoCredentialsError", "PartialCredentialsError"):
        return 2, f"{message}: set AWS_PROFILE or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (aws configure)"
    return 1, f"{type(exc).__name__}: {message}"


def _positive(kind: type[int] | type[float], *, zero: bool = False) -> Callable[[str], float]:
    """An argparse type: a number above 0, or from 0 with ``zero`` (``invalid value`` otherwise, as
    argparse says it)."""

    def parse(text: str) -> float:
        value = kind(text)
        if not math.isfinite(value) or not (value >= 0 if zero else value > 0):
            raise ValueError(text)
        return value

    parse.__name__ = f"{'non-negative' if zero else 'positive'} {kind.__name__}"
    return parse


class _Parser(argparse.ArgumentParser):
    """A usage mistake is one line naming the command, not the whole usage text."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def _stop_on_signals() -> None:
    """SIGTERM (a ``timeout``, a CI kill) and SIGHUP (a closed terminal) end a command as Ctrl-C does: by an
    exception, so every context manager stops what it started. Clean-up then runs once, uninterrupted."""
    stopping = [getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)]

    def stop(signum: int, _frame: object) -> None:
        for each in stopping:
            signal.signal(each, signal.SIG_IGN)
        raise SystemExit(128 + signum)

    for each in stopping:
        signal.signal(each, stop)


def _main(argv: list[str] | None, out: TextIO) -> int:
    parser = _Parser(prog="python -m sandbox", description="Run the pipelines on local services.")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    commands = parser.add_subparsers(dest="command", required=True)
    common = _Parser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show an error's traceback")

    imp = commands.add_parser(
        "import", parents=[common], help="import JSON, JSON Lines, CSV (maybe gzipped), Parquet or Avro into Braze"
    )
    imp.add_argument(
        "paths", type=Path, nargs="+", metavar="PATH",
        help="several files run at once, as separate runs; or one folder, imported as if its tree were copied "
        "under incoming/ (attributes/, events/, purchases/ fix the kind), file after file in path order",
    )  # fmt: skip
    imp.add_argument(
        "--in-order", action="store_true",
        help="import the files one after another in one sandbox (one AWS, one Braze): a later file finds what "
        "earlier ones set, and sends only what changed since",
    )  # fmt: skip
    imp.add_argument(
        "--full", action="store_true",
        help="tag the file(s) braze-send=full: every attribute value is sent, whatever was last set",
    )  # fmt: skip
    imp.add_argument(
        "--no-deltas", action="store_true",
        help="send every attribute value, keeping no records of what was set (import:deltas=false)",
    )  # fmt: skip
    imp.add_argument(
        "--dry-run", action="store_true",
        help="read, check and count under incoming/dry-run/, sending nothing; the report says what would be sent",
    )  # fmt: skip
    imp.add_argument(
        "--allow-user-deletes", action="store_true",
        help="let files under user-deletes/ delete users (import:allowUserDeletes); without it such runs stop, "
        "sending nothing",
    )  # fmt: skip
    imp.add_argument(
        "--braze-url", type=_braze_url, help="send to this Braze REST endpoint instead of the built-in emulator"
    )
    imp.add_argument("--braze-api-key", help="Braze REST API key (default: the emulator's key)")
    imp.add_argument(
        "--invocation-seconds", type=_positive(float), default=900.0, help="time each invocation starts with"
    )
    imp.add_argument(
        "--json", action="store_true",
        help='print only the run report as one JSON object; with several files or --in-order '
        '{"runs": [report, ...]}',
    )  # fmt: skip
    imp.add_argument("--ambiguous", choices=("resend", "fail"), help="what to do with requests left unanswered")
    imp.add_argument("--max-in-flight", type=_positive(int), help="requests in flight at once")
    imp.add_argument(
        "--workspace-requests-per-second", type=_positive(float),
        help="the workspace's /users/track limit, shared by the runs (default 1000)",
    )  # fmt: skip
    imp.add_argument(
        "--requests-per-second", type=_positive(float, zero=True),
        help="an optional ceiling for each run, below its share (0: none)",
    )  # fmt: skip
    imp.add_argument(
        "--csv-type-cast", metavar="SPEC", help="CSV column types overriding inference: zip=string,level=integer"
    )
    imp.add_argument(
        "--batch-rule",
        choices=("combined", "combined_50", "per_array"),
        help="75 or 50 objects combined, or 75 per array",
    )
    imp.add_argument(
        "--keep", type=_keep_dir, metavar="DIR",
        help="copy each run's outputs (report, rejects, failed objects) out of the sandbox's bucket into DIR, "
        "under their keys",
    )  # fmt: skip
    imp.add_argument("--emulator", default="{}", help="emulator settings as JSON (faults, latency, limits)")

    sample = commands.add_parser("currents-sample", parents=[common], help="write realistic Braze Currents Avro files")
    sample.add_argument("--users", type=_positive(int), default=50, help="users the events are spread over")
    sample.add_argument(
        "--events", type=_positive(int), default=500,
        help="events of each of the three event types (some then repeated across files)",
    )  # fmt: skip
    sample.add_argument("--out", type=Path, required=True)

    cur = commands.add_parser(
        "currents", parents=[common], help="personalize from Currents files and read the Content API"
    )
    cur.add_argument("paths", type=Path, nargs="+", help="Avro files or directories in Braze's layout")
    cur.add_argument("--bedrock", action="store_true", help="generate with Amazon Bedrock (your AWS credentials)")
    cur.add_argument("--json", action="store_true", help="print only the result, as one JSON object")
    cur.add_argument("--content", action="append", default=[], metavar="BRAZE_ID", help="read this user's content")
    cur.add_argument("--format", choices=("json", "dynamodb"), default="json", help="the Content API's answer shape")

    bulk = commands.add_parser("bulk-upload", parents=[common], help="a CI360 bulk-connector webhook, end to end")
    bulk.add_argument("--data-file", type=Path, required=True, help="headerless CSV, first column identity_id")
    bulk.add_argument(
        "--metadata-file", type=Path,
        help='the column names: CI360\'s JSON list of {"columnName": ..., "dataType": ...}, or one CSV header line',
    )  # fmt: skip
    bulk.add_argument("--s3-filename", required=True, help="the task's s3_filename send parameter")
    bulk.add_argument("--api-key", help="API key to send (default: the sandbox's own)")
    bulk.add_argument("--json", action="store_true", help="print only the outcome, as one JSON object")
    bulk.add_argument(
        "--invocation-seconds", type=_positive(float), default=900.0,
        help="the copier's time limit (try 1 to watch a copy hand over from invocation to invocation)",
    )  # fmt: skip
    bulk.add_argument(
        "--to-braze", action="store_true",
        help="also import the landed file into Braze as user attributes (bulkUpload:deliverToBraze)",
    )  # fmt: skip
    bulk.add_argument(
        "--braze-url", type=_braze_url, help="with --to-braze: this Braze REST endpoint, not the built-in emulator"
    )
    bulk.add_argument("--braze-api-key", help="with --braze-url: the Braze REST API key")
    bulk.add_argument(
        "--braze-id-column", default="external_id",
        help="with --to-braze: the metadata column identifying Braze users (bulkUpload:brazeIdColumn)",
    )  # fmt: skip

    srv = commands.add_parser(
        "serve", parents=[common], help="every pipeline on local services, until Ctrl-C or SIGTERM"
    )
    srv.add_argument("--info", metavar="FILE", help="write the endpoints and credentials here (default: stdout)")
    srv.add_argument(
        "--braze-url", type=_braze_url, help="send to this Braze REST endpoint instead of the built-in emulator"
    )
    srv.add_argument("--braze-api-key", help="Braze REST API key (default: the emulator's key)")
    srv.add_argument(
        "--flush-seconds", type=_positive(float), default=10.0, help="how often capture's Firehose stand-in writes"
    )

    demo = commands.add_parser(
        "demo", parents=[common], help="import a generated file through the emulator and summarise it"
    )
    demo.add_argument("--objects", type=_positive(int), default=50_000)

    args = parser.parse_args(argv)
    if not (args.command == "currents" and args.bedrock):
        # Only placeholder credentials reach moto, at the sandbox's endpoint: the user's own AWS set-up (a
        # profile, config files, a service's endpoint) is never needed, and a broken one would stop every client.
        for name in [*(n for n in os.environ if n.startswith("AWS_ENDPOINT_URL_")), *_AWS_SETUP]:
            os.environ.pop(name, None)
    if args.command != "serve":
        # The functions' own JSON logs repeat what the command prints; --debug (or SANDBOX_LOG_LEVEL) shows them.
        os.environ.setdefault("SANDBOX_LOG_LEVEL", "WARNING" if getattr(args, "debug", False) else "CRITICAL")
    if args.command == "import":
        return _import(args, out)
    if args.command == "currents-sample":
        from . import currents_sample

        for path in currents_sample.write_sample(args.out, args.users, args.events):
            out.write(f"{path}\n")
        return 0
    if args.command == "currents":
        return _currents(args, out)
    if args.command == "bulk-upload":
        return _bulk_upload(args, out)
    if args.command == "serve":
        from .serve import serve

        _require_braze_key(args)
        return serve(
            info_path=args.info, braze_url=args.braze_url, braze_api_key=args.braze_api_key,
            flush_seconds=args.flush_seconds, out=out, log=sys.stderr,
        )  # fmt: skip
    return _demo(args.objects, out)


def _bulk_upload(args: argparse.Namespace, out: TextIO) -> int:
    from .bulk_upload import API_KEY, failure_reason, upload

    for path in (args.data_file, args.metadata_file):
        if path is not None and not path.is_file():
            raise UsageError(f"{path} is not a file")
    for option in ("braze_url", "braze_api_key"):
        if getattr(args, option) and not args.to_braze:
            raise UsageError(f"--{option.replace('_', '-')} needs --to-braze")
    _require_braze_key(args)
    result = upload(
        args.data_file, args.metadata_file, args.s3_filename, api_key=args.api_key or API_KEY,
        invocation_seconds=args.invocation_seconds, to_braze=args.to_braze, braze_url=args.braze_url,
        braze_api_key=args.braze_api_key, braze_id_column=args.braze_id_column,
        progress=None if args.json else (lambda line: print(line, file=sys.stderr)),
    )  # fmt: skip
    reason = failure_reason(result)
    if reason:
        result["failure_reason"] = reason
    if args.json:
        out.write(json.dumps(result) + "\n")
    else:
        out.write("".join(f"{_bulk_field(k, v)}\n" for k, v in result.items()))
    return 1 if reason else 0


def _items(counts: dict[str, int]) -> str:
    """``1 item in 1 request``, ``1,300 items in 3 requests``."""
    return " in ".join(
        f"{n:,} {unit}{'' if n == 1 else 's'}"
        for n, unit in ((counts["objects"], "item"), (counts["requests"], "request"))
    )


_BULK_UNITS = {"size": "bytes", "copier_invocations": "invocations", "braze_emulator_stored": "objects"}


def _bulk_field(key: str, value: Any) -> str:
    """One field of a bulk upload's outcome as text: a count with its unit, a mapping as JSON."""
    if isinstance(value, dict | list):
        return f"{key}: {json.dumps(value)}"
    if isinstance(value, int) and key in _BULK_UNITS:
        return f"{key}: {value:,} {_BULK_UNITS[key]}"
    return f"{key}: {value}"


def _currents(args: argparse.Namespace, out: TextIO) -> int:
    from .currents import CurrentsSandbox, clashes, keys, not_avro, report_json, unread

    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        raise UsageError(f"not found: {', '.join(missing)}")
    planned = keys(args.paths)
    if not planned:
        raise UsageError(f"no .avro file in {', '.join(map(str, args.paths))}")
    same = clashes(planned)
    if same:
        first, second, key = same[0]
        more = f" (and {len(same) - 1:,} more such pairs)" if len(same) > 1 else ""
        raise UsageError(
            f"{first} and {second} would both be {key}{more}: one would replace the other in the bucket; "
            "pass them in separate commands"
        )
    ignored = unread(planned)
    if ignored:
        more = f" (and {len(ignored) - 1:,} more)" if len(ignored) > 1 else ""
        raise UsageError(
            f"{ignored[0]}{more}: the personalizer reads only .avro files under a folder event_type=<type>/, "
            "as Braze writes them (…/event_type=users.behaviors.CustomEvent/date=2026-11-23-10/00000.avro): "
            "put the file in such a folder"
        )
    if args.bedrock:
        _require_credentials("--bedrock")
    for file in not_avro(args.paths):
        print(f"skipped {file}: not an .avro file", file=sys.stderr)
    with CurrentsSandbox(bedrock=args.bedrock) as box:
        say = None if args.json else (lambda line: print(line, file=sys.stderr, flush=True))
        report = box.process(box.upload(args.paths), progress=say)
        query = {"format": args.format} if args.format != "json" else None
        content = {braze_id: box.get_content(braze_id, query) for braze_id in args.content}
        result = report_json(
            report, content, failed_files=box.failed_files, failed_generations=box.failed_generations,
            users_with_content=box.users_with_content(),
        )  # fmt: skip
    if args.json:
        out.write(json.dumps(result, ensure_ascii=False) + "\n")
    else:
        out.write(_currents_summary(result["report"]))
        for key, reason in result["failed_files"].items():
            out.write(f"failed file {key}: {reason}\n")
        failures = list(result["failed_generations"].items())
        for user, reason in failures[:SHOWN]:
            out.write(f"generation failed for {user}: {reason}\n")
        if len(failures) > SHOWN:
            out.write(f"generation failed for {len(failures) - SHOWN:,} more users\n")
        users = result["users_with_content"]
        more = f" and {len(users) - SHOWN:,} more" if len(users) > SHOWN else ""
        if users:
            listed = ", ".join(users[:SHOWN])
            out.write(f"content for {len(users):,} users: {listed}{more} (read one with --content ID)\n")
        else:
            out.write("content for no user: nothing was generated\n")
        for braze_id, answer in result["content"].items():
            body = json.dumps(answer["body"], indent=2, ensure_ascii=False)
            out.write(f"GET /content/{braze_id} -> {answer['status']}\n{body}\n")
    return 1 if report["failed"] or report["files_failed"] else 0


def _currents_summary(report: dict[str, int]) -> str:
    """The Currents report with each count's unit: files, event records, users (each once), generations."""
    read = report["files"] + report["files_failed"]
    return (
        f"  files           {read:>8,}   ({report['files_failed']:,} failed)\n"
        f"  event records   {report['records']:>8,}   {report['kept']:,} kept, {report['duplicates']:,} duplicates, "
        f"{report['no_intent']:,} without intent (machine opens, bot clicks)\n"
        f"  users           {report['users']:>8,}   with events merged into their profile\n"
        f"  generations     {report['scheduled']:>8,}   scheduled: {report['generated']:,} generated, "
        f"{report['skipped_fresh']:,} skipped (nothing new), {report['failed']:,} failed (SQS would retry them)\n"
    )


def _finite(value: Any) -> bool:
    """Whether every number in a JSON value is finite (Python reads 1e999 as infinity)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    return all(_finite(v) for v in value) if isinstance(value, list) else True


def _braze_url(value: str) -> str:
    """--braze-url: a Braze REST endpoint, or any http(s) server that answers like one."""
    url = urllib.parse.urlsplit(value)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise argparse.ArgumentTypeError(f"must be an http(s) URL such as https://rest.iad-01.braze.com, not {value!r}")
    return value


def _keep_dir(value: str) -> Path:
    """--keep's folder, made now if missing: a file there, or a folder that cannot be made or written, is a
    mistake found before anything runs rather than after the import."""
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{value} is a file, not a folder: name a folder to copy the outputs into")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"{value} cannot be made: {exc.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"{value} cannot be written: not writable by you")
    return path


def _require_braze_key(args: argparse.Namespace) -> None:
    """Another Braze than the emulator takes its own key."""
    if args.braze_url and not args.braze_api_key:
        raise UsageError("--braze-url needs --braze-api-key (the key sent to that Braze)")


def _require_credentials(option: str) -> None:
    """Options that reach AWS need credentials; found missing before any service starts."""
    import boto3

    if boto3.Session().get_credentials() is None:
        raise UsageError(
            f"{option} calls AWS with your credentials and found none: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (aws configure, aws sso login)"
        )


_FORMATS = ".json, .jsonl, .ndjson and .csv files (optionally .gz), .parquet and .avro files, or files without a suffix"


def _importable(path: Path) -> bool:
    """Whether the importer would read this file: the function's own rule (its suffix, or none)."""
    from braze_importer.service import format_for

    return format_for(path.name, path.stat().st_size) is not None


def _folder_files(folder: Path, dry_run: bool) -> tuple[list[tuple[Path, str]], list[str]]:
    """The importable files under ``folder``, in path order, each with its key under incoming/
    (under incoming/dry-run/ for a dry run); and the others, by path under ``folder``, left out."""
    found: list[tuple[Path, str]] = []
    skipped: list[str] = []
    for path in sorted((p for p in folder.rglob("*") if p.is_file()), key=lambda p: p.relative_to(folder).parts):
        relative = path.relative_to(folder).as_posix()
        if _importable(path):
            found.append((path, ("dry-run/" if dry_run else "") + relative))
        else:
            skipped.append(relative)
    return found, skipped


def _import(args: argparse.Namespace, out: TextIO) -> int:
    from .importer import INCOMING, ImportSandbox
    from .progress import Extent, ProgressLine

    folder = args.paths[0] if len(args.paths) == 1 and args.paths[0].is_dir() else None
    keyed: list[tuple[Path, str]] | None = None
    skipped: list[str] = []
    if folder is not None:
        keyed, skipped = _folder_files(folder, args.dry_run)
        if not keyed:
            raise UsageError(f"{folder} holds no file the importer reads")
    for path in args.paths if folder is None else []:
        if not path.is_file():
            raise UsageError(f"{path} is not a file")
        if not _importable(path):
            raise UsageError(f"{path}: the importer reads {_FORMATS}")
    _require_braze_key(args)
    workspace = args.workspace_requests_per_second or 1000
    if args.requests_per_second and args.requests_per_second > workspace:
        raise UsageError(
            f"--requests-per-second {args.requests_per_second:g} is above the workspace's limit "
            f"(--workspace-requests-per-second {workspace:g}): a run's ceiling stays within it"
        )
    try:
        emulator_settings = json.loads(args.emulator)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--emulator is not valid JSON: {exc}") from None
    if not _finite(emulator_settings):
        raise UsageError("--emulator holds a number too large to be one (every number must be finite)")
    if not isinstance(emulator_settings, dict):
        raise UsageError(f"--emulator must be a JSON object of settings, not {args.emulator}")
    if args.braze_url and args.emulator != "{}":
        raise UsageError("--emulator configures the built-in Braze emulator: with --braze-url none runs")
    for relative in skipped:  # once the command is known to run
        print(f"skipped {relative}: the importer reads {_FORMATS}", file=sys.stderr)

    env = {
        name: str(value)
        for name, value in (
            ("AMBIGUOUS_POLICY", args.ambiguous),
            ("MAX_IN_FLIGHT", args.max_in_flight),
            ("WORKSPACE_REQUESTS_PER_SECOND", args.workspace_requests_per_second),
            ("REQUESTS_PER_SECOND", args.requests_per_second or None),  # 0: no ceiling, so nothing
            ("BATCH_RULE", args.batch_rule),
            ("CSV_TYPE_CAST", args.csv_type_cast),
            ("ALLOW_USER_DELETES", "true" if args.allow_user_deletes else None),
        )
        if value is not None
    }
    if args.batch_rule and "batch_rule" not in emulator_settings:
        emulator_settings["batch_rule"] = args.batch_rule
    # One file runs in this process, as before; several at once in worker processes.
    one = len(args.paths) == 1 and folder is None and not args.in_order
    prefix = INCOMING + ("dry-run/" if args.dry_run else "")
    keys = [(p, INCOMING + k) for p, k in keyed] if keyed is not None else [(p, prefix + p.name) for p in args.paths]
    extents: dict[str, Extent] = {}
    for path, key in keys if sys.stderr.isatty() and not args.json else []:
        extents[key] = extents[key] + Extent.of(path) if key in extents else Extent.of(path)  # same name twice
    line = ProgressLine(lambda: sandbox.read_so_far(), extents, sys.stderr, wanted=not args.json)
    progress = None if args.json else line.say
    with (
        ImportSandbox(
            braze_url=args.braze_url,
            braze_api_key=args.braze_api_key,
            invocation_seconds=args.invocation_seconds,
            emulator_settings=emulator_settings,
            function_env=env,
            progress=progress,
            deltas=not args.no_deltas,
        ) as sandbox,
        line,
    ):
        if keyed is not None:  # a folder: one file after another, as a copy of its tree would arrive
            reports = [sandbox.import_file(path, INCOMING + key, full=args.full) for path, key in keyed]
            names = [key for _, key in keyed]
        elif one or args.in_order:
            reports = [sandbox.import_file(path, prefix + path.name, full=args.full) for path in args.paths]
            names = [str(p) for p in args.paths]
        else:
            reports = sandbox.import_files(args.paths, prefix=prefix, full=args.full)
            names = [str(p) for p in args.paths]
        rejects = [sandbox.rejects(report, SHOWN) for report in reports]
        for report in reports if args.keep else []:
            kept = sandbox.keep(report, args.keep)
            line.say(f"kept {len(kept)} files of {report['source']['key']} in {args.keep}")
    if args.json:  # each report gains its first rejects, read from the run's outputs before they go
        reports = [{**report, "first_rejects": shown} for report, shown in zip(reports, rejects, strict=True)]
        out.write(json.dumps(reports[0] if one else {"runs": reports}) + "\n")
    else:
        for name, report, shown in zip(names, reports, rejects, strict=True):
            out.write(("" if one else f"{name}: ") + _summary(report) + "\n")
            out.write("".join(f"  {line}\n" for line in _reasons(report, shown)))
    return 0 if all(r["status"] == "completed" and r["failed"] == 0 for r in reports) else 1


SHOWN = 20  # rejects printed per run; the rest are counted


def _reasons(report: dict[str, Any], rejects: list[dict[str, Any]]) -> list[str]:
    """Why objects were rejected (the first few, each where it was in the file) and why batches failed."""
    lines = [_reject_line(reject) for reject in rejects]
    if report["rejected"] > len(rejects):
        lines.append(f"and {report['rejected'] - len(rejects):,} more rejects")
    lines += [f"failed: {count:,} objects: {reason}" for reason, count in (report.get("failure_reasons") or {}).items()]
    return lines


def _reject_line(reject: dict[str, Any]) -> str:
    line = f" (line {reject['line']:,})" if reject.get("line") is not None else ""
    return f"reject: element {reject['index']:,}{line} at byte {reject['offset']:,}: {reject['reason']}"


# What a stop's message tells an operator to change in the deployment, as this command's flag.
_SANDBOX_FIXES = {
    "user_deletes_not_allowed": "in the sandbox: run it again with --allow-user-deletes (import:allowUserDeletes)",
}


def _error_line(error: dict[str, Any], stop_reason: str | None = None) -> str:
    """A stop's error: at a byte of the file, or from Braze (a missing catalog) or the settings; with the
    sandbox's own fix where the message names a deployment's."""
    where = f" at byte {error['offset']:,}" if "offset" in error else ""
    fix = f"\n  {_SANDBOX_FIXES[stop_reason]}" if stop_reason in _SANDBOX_FIXES else ""
    return f"  error{where}: {error['message']}{fix}"


def _summary(report: dict[str, Any]) -> str:
    lines = [
        f"run {report['status']}" + (f" ({report['stop_reason']})" if report.get("stop_reason") else ""),
        f"  objects read  {report['objects_read']:>10,}",
    ]
    if report.get("dry_run"):
        lines.append("  dry run: nothing sent; would send")
        for endpoint, would in report["would_send"].items():
            lines.append(f"    {endpoint:<12}{would['objects']:>10,} objects in {would['requests']:,} requests")
        lines.append(f"  rejected      {report['rejected']:>10,}   (rejects: {report['outputs']['rejects']['prefix']})")
        if report.get("error"):
            lines.append(_error_line(report["error"]))
        return "\n".join(lines)
    lines += [
        f"  accepted      {report['accepted']:>10,}",
        f"  rejected      {report['rejected']:>10,}   (rejects: {report['outputs']['rejects']['prefix']})",
        f"  failed        {report['failed']:>10,}   (replay: copy {report['outputs']['failed']['prefix']}"
        " back into the incoming prefix, in the folder it came from)",
        f"  ambiguous     {report['ambiguous']:>10,}   objects in {report['ambiguous_requests']:,} unanswered requests",
        f"  requests      {report['requests']:>10,}   retries {report['retries']:,}, 429s {report['throttled']:,}",
        f"  invocations   {report['invocations']:>10,}   in {report['seconds']:.1f} s",
    ]
    for endpoint, sent in report.get("endpoints", {}).items():
        lines.append(f"    {endpoint}: {sent['objects']:,} objects taken, {sent['requests']:,} requests")
    lines += _delta_lines(report.get("deltas"))
    if report.get("error"):
        lines.append(_error_line(report["error"], report.get("stop_reason")))
    return "\n".join(lines)


def _delta_lines(deltas: dict[str, Any] | None) -> list[str]:
    """What sending only what changed saved (nothing for a run without attribute values)."""
    if deltas and not deltas["enabled"]:
        return ["  deltas off: every attribute value sent, no records kept"]
    if not deltas or not deltas["values_read"]:
        return []
    read, sent, skipped = deltas["values_read"], deltas["values_sent"], deltas["values_skipped"]
    line = f"  attribute values: {read:,} read, {sent:,} sent"
    if deltas["full_send"]:
        return [line + " (full send, tagged braze-send=full: every value sent, the records rewritten)"]
    lines = [
        line + f", {skipped:,} unchanged ({100 * skipped / read:.0f} %); "
        f"{deltas['objects_unchanged']:,} objects not sent at all"
    ]
    troubles = [
        f"{deltas[key]:,} {label}"
        for key, label in (
            ("users_too_large", "users too large to record (sent in full)"),
            ("lookup_errors", "record look-ups failed (sent in full)"),
            ("commit_errors", "records not written (sent in full next time)"),
        )
        if deltas[key]
    ]
    if troubles:
        lines.append("  deltas: " + ", ".join(troubles))
    return lines


def _demo(count: int, out: TextIO) -> int:
    from . import sample_data
    from .importer import ImportSandbox

    with tempfile.TemporaryDirectory() as tmp:
        path = sample_data.write(Path(tmp) / "demo-events.json", count, invalid_every=997)
        out.write(f"Import: {count:,} events, purchases and attribute updates ({path.stat().st_size:,} bytes),\n")
        out.write("        a few invalid on purpose; Braze answers in 30 ms and now and then fails (503, dropped\n")
        out.write("        connections); each invocation has 1 s, so the run continues across invocations.\n")

        def progress(line: str) -> None:
            out.write(f"  {line}\n")

        faults = {"latency_ms": 30, "rates": {"503": 0.01, "drop_before": 0.01}}
        with ImportSandbox(
            invocation_seconds=1.0, emulator_settings=faults, function_env={"MAX_IN_FLIGHT": "8"}, progress=progress
        ) as sandbox:
            report = sandbox.import_file(path)
            rejects = sandbox.rejects(report, 3)
            stored = sandbox.emulator.state()["stored"] if sandbox.emulator else 0
    out.write(_summary(report) + "\n")
    out.write(f"  the Braze emulator stored {stored:,} objects\n")
    for reject in rejects:
        out.write(f"  {_reject_line(reject)}\n")
    if report["rejected"] > len(rejects):
        more = report["rejected"] - len(rejects)
        out.write(f"  and {more:,} more rejects (python -m sandbox import FILE shows the first {SHOWN})\n")
    ok = report["status"] == "completed" and report["failed"] == 0 and stored == report["accepted"]
    out.write("  every accepted object stored exactly once\n" if ok else "  MISMATCH between report and emulator\n")
    ok = ok and _demo_folders(out) and _demo_catalog(out) and _demo_deltas(out)
    return 0 if ok and _demo_currents(out) and _demo_bulk_upload(out) and _demo_capture(out) else 1


def _demo_folders(out: TextIO) -> bool:
    """Files in the kind folders as Braze's Cloud Data Ingestion writes them (an identifier column and
    PAYLOAD), first as a dry run, then for real; the emulator holds what the real run sent only."""
    from .importer import INCOMING, ImportSandbox

    out.write("\nFolders: Cloud Data Ingestion rows in incoming/events/ (JSON Lines, one row without an\n")
    out.write("         identifier) and incoming/attributes/ (CSV, a custom attribute called name), dry run first.\n")
    events = [
        {"EXTERNAL_ID": f"demo-{i}", "PAYLOAD": json.dumps({"name": "viewed", "time": "2024-04-02T14:34:08"})}
        for i in range(120)
    ]
    events[7] = {"PAYLOAD": json.dumps({"name": "viewed", "time": "2024-04-02T14:34:08"})}
    attributes = "EXTERNAL_ID,PAYLOAD\n" + "".join(
        f'demo-{i},"{json.dumps({"name": f"N{i}", "age": 30 + i % 40}).replace(chr(34), chr(34) * 2)}"\n'
        for i in range(80)
    )
    with tempfile.TemporaryDirectory() as tmp, ImportSandbox() as sandbox:
        files = {
            "events/viewed.jsonl": "\n".join(json.dumps(e) for e in events) + "\n",
            "attributes/users.csv": attributes,
        }
        for name, text in files.items():
            (Path(tmp) / name.replace("/", "-")).write_text(text)
        dry = [sandbox.import_file(Path(tmp) / n.replace("/", "-"), f"{INCOMING}dry-run/{n}") for n in files]
        sent_by_dry_run = sandbox.emulator.state()["stored"] if sandbox.emulator else 0
        real = [sandbox.import_file(Path(tmp) / n.replace("/", "-"), INCOMING + n) for n in files]
        stored = sandbox.emulator.state()["stored"] if sandbox.emulator else 0
    for name, report in zip(files, dry, strict=True):
        would = report["would_send"]["/users/track"]
        out.write(
            f"  dry run of {name}: would send {would['objects']} objects in {would['requests']} requests, "
            f"{report['rejected']} rejected; sent {sent_by_dry_run}\n"
        )
    for name, report in zip(files, real, strict=True):
        out.write(
            f"  {name}: {report['source']['kind']}, accepted {report['accepted']}, rejected {report['rejected']}\n"
        )
    ok = sent_by_dry_run == 0 and stored == sum(r["accepted"] for r in real) == 199
    out.write("  the dry run sent nothing; the real run matches it\n" if ok else "  MISMATCH in the folders demo\n")
    return ok


def _demo_catalog(out: TextIO) -> bool:
    """A catalog from a warehouse export (Parquet, CDI columns, one item deleted), dry run first; the
    emulator's catalog is created by its setting, as a Braze catalog is created in the dashboard."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .importer import INCOMING, ImportSandbox

    out.write("\nCatalog: a Parquet export in incoming/catalogs/products/ (ID, PAYLOAD, DELETED), dry run first.\n")
    types = (("id", "string"), ("title", "string"), ("price", "number"))
    fields = [{"name": name, "type": kind} for name, kind in types]
    ids = [f"sku-{i:03d}" for i in range(130)] + ["sku-007"]  # the last row deletes an item written before
    payloads = [json.dumps({"title": f"Product {i}", "price": round(1 + i * 0.25, 2)}) for i in range(130)] + [""]
    deleted = [False] * 130 + [True]
    settings = {"catalogs": {"products": {"fields": fields}}}
    with tempfile.TemporaryDirectory() as tmp, ImportSandbox(emulator_settings=settings) as sandbox:
        path = Path(tmp) / "products.parquet"
        pq.write_table(pa.table({"ID": ids, "PAYLOAD": payloads, "DELETED": deleted}), path, row_group_size=50)
        key = "catalogs/products/products.parquet"
        dry = sandbox.import_file(path, f"{INCOMING}dry-run/{key}")
        sent_by_dry_run = sandbox.emulator.state()["requests"] if sandbox.emulator else 0
        real = sandbox.import_file(path, INCOMING + key)
        held = sandbox.emulator.catalog("products")["items"] if sandbox.emulator else []
    for label, counts in dry["would_send"].items():
        out.write(f"  dry run: would send {_items(counts)} to {label}\n")
    for label, counts in real["endpoints"].items():
        out.write(f"  sent {_items(counts)} to {label}\n")
    out.write(f"  the emulator's catalog holds {len(held)} items (sku-007 deleted after it was written)\n")
    ok = sent_by_dry_run == 0 and real["status"] == "completed" and len(held) == 129
    ok = ok and all(item["id"] != "sku-007" for item in held)
    verdict = "the dry run sent nothing; the catalog holds what the file says" if ok else "MISMATCH in the catalog"
    out.write(f"  {verdict}\n")
    return ok


def _demo_deltas(out: TextIO) -> bool:
    """Two daily exports of the same users, with events between them: the second import sends only
    the values that changed, and Braze holds exactly the second export (events are never diffed)."""
    from . import sample_data
    from .importer import INCOMING, ImportSandbox

    first, second = sample_data.snapshots(2_000)
    events = sample_data.snapshot_events(first, 300)
    changed, users_unchanged = sample_data.changes(first, second)
    out.write("\nOnly what changed: two daily exports of 2,000 users' attributes in incoming/attributes/ (7 each:\n")
    out.write("                   an array of strings, a nested object, a few nulls; about 5 % of the values\n")
    out.write("                   changed the second day), and an events file between them.\n")
    files = (("attributes/members-day-1.jsonl", first), ("events/app.jsonl", events),
             ("attributes/members-day-2.jsonl", second))  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp, ImportSandbox() as sandbox:
        reports = [
            sandbox.import_file(sample_data.write_lines(Path(tmp) / key.replace("/", "-"), objects), INCOMING + key)
            for key, objects in files
        ]
        users = sandbox.emulator.users() if sandbox.emulator else []
    for (key, _), report in zip(files, reports, strict=True):
        out.write(f"  {key}: {report['status']}, accepted {report['accepted']:,}, rejected {report['rejected']:,}\n")
        for line in _delta_lines(report.get("deltas")):
            out.write(f"  {line}\n")
    deltas = reports[-1].get("deltas") or {}
    sent_changes = deltas.get("values_sent") == changed and deltas.get("objects_unchanged") == users_unchanged
    out.write(
        f"  the second export changed {changed:,} values; {users_unchanged:,} users had no change: "
        + ("exactly those values were sent\n" if sent_changes else "MISMATCH with what was sent\n")
    )
    holds = {user["external_id"]: user["attributes"] for user in users} == sample_data.held(second)
    events_held = sum(len(user["events"]) for user in users)
    out.write(
        f"  the Braze emulator holds {len(users):,} users and {events_held:,} events: "
        + ("exactly the second export\n" if holds else "MISMATCH with the second export\n")
    )
    completed = all(r["status"] == "completed" and r["failed"] == 0 and r["rejected"] == 0 for r in reports)
    return completed and sent_changes and holds and events_held == len(events)


def _demo_bulk_upload(out: TextIO) -> bool:
    from .bulk_upload import delivered, upload

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "audience.csv"
        with data.open("w") as f:
            for i in range(200_000):
                f.write(f"cust-{i:08d},{i % 100},segment-{i % 7}\n")
        meta = Path(tmp) / "metadata.json"
        meta.write_text(
            '[{"columnName": "identity_id", "dataType": "STRING"}, {"columnName": "score", "dataType": "NUMBER"},'
            ' {"columnName": "segment", "dataType": "STRING"}]'
        )
        out.write(f"\nBulk upload: a CI360 task's {data.stat().st_size:,}-byte headerless CSV and its metadata,\n")
        out.write("             staged, posted as a webhook with pre-signed URLs, copied into S3.\n")
        result = upload(data, meta, "weekly/audience.csv")
        for key in ("http_status", "job_status", "s3_key", "size", "header"):
            out.write(f"  {_bulk_field(key, result.get(key))}\n")
        audience = Path(tmp) / "braze-audience.csv"
        with audience.open("w") as f:
            for i in range(5_000):
                f.write(f"ci-{i:06d},{i % 100},user-{i:05d},{'true' if i % 3 else 'false'},segment-{i % 7}\n")
        meta = Path(tmp) / "braze-metadata.csv"
        meta.write_text("identity_id,score,external_id,email_opt_in,segment\n")
        out.write("\n             The same with bulkUpload:deliverToBraze: a 5,000-row audience lands and the\n")
        out.write("             importer sends it to Braze as attributes (identity_id never sent; external_id\n")
        out.write("             identifies the user).\n")
        sent = upload(audience, meta, "weekly/braze-audience.csv", to_braze=True)
    report = sent.get("import") or {}
    for key in ("job_status", "header", "import_run_id"):
        out.write(f"  {key}: {sent.get(key)}\n")
    out.write(
        f"  import: {report.get('status')}; accepted {report.get('accepted', 0):,}, rejected "
        f"{report.get('rejected', 0):,}, failed {report.get('failed', 0):,}, in {report.get('requests', 0)} requests\n"
    )
    fields = sent.get("braze_emulator_fields") or []
    out.write(f"  the Braze emulator stored {sent.get('braze_emulator_stored', 0):,} attribute objects with fields ")
    out.write(", ".join(fields) + "\n")
    return bool(
        result.get("job_status") == "done"
        and delivered(sent)
        and report.get("accepted") == sent.get("braze_emulator_stored") == 5_000
        and fields == ["email_opt_in", "external_id", "score", "segment"]
    )


def _demo_capture(out: TextIO) -> bool:
    from .capture import DEMO_USER, CaptureSandbox

    out.write("\nCapture: a client signs in to Cognito, posts two batches of events with its access token;\n")
    out.write("         EventBridge's rule, Firehose's transform and the importer take them to Braze.\n")
    with CaptureSandbox() as box:
        token = box.sign_in()["AccessToken"]
        out.write(f"  signed in as {DEMO_USER} (external id {box.external_id}): access token of {len(token)} bytes\n")
        views = {"entries": [
            {"entry": json.dumps({"eventType": "pageview", "schemaVersion": "1.0", "data": {"page": f"/shop/{i}"}})}
            for i in range(8)
        ]}  # fmt: skip
        status, answer = box.post(views, token)
        out.write(f"  POST /event, 8 entries in the capture client's format -> {status} {json.dumps(answer)}\n")
        mixed = {"events": [
            {"eventType": "loyaltypurchase", "data": {"sku": "OL-SEASON", "points": 120}, "external_id": "other"},
            {"eventType": "", "data": {}},
        ]}  # fmt: skip
        status, answer = box.post(mixed, f"Bearer {token}")
        out.write(f"  POST /event, a purchase and a malformed entry -> {status} {json.dumps(answer)}\n")
        refused = box.post(mixed, "Bearer forged.token.value")[0]
        out.write(f"  the same with a forged token -> {refused}\n")
        delivered = box.deliver()
        report = delivered["report"] or {}
        out.write(f"  Firehose wrote {delivered['written']} events to {delivered['key']}\n")
        out.write(f"  the importer: accepted {report.get('accepted', 0)}, rejected {report.get('rejected', 0)}\n")
        events = [o["object"] for o in (box.imports.emulator.objects() if box.imports.emulator else [])]
        owners = sorted({str(e.get("external_id")) for e in events})
        out.write(f"  the Braze emulator stored {len(events)} events, all for external id(s) {', '.join(owners)}\n")
    return delivered["written"] == 9 and len(events) == 9 and owners == [box.external_id] and refused == 401


def _demo_currents(out: TextIO) -> bool:
    from . import currents_sample
    from .currents import CurrentsSandbox

    with tempfile.TemporaryDirectory() as tmp:
        currents_sample.write_sample(Path(tmp) / "sample", users=40, events=400)
        story = currents_sample.period(Path(tmp) / "period", "braze-demo", start=int(time.time()) - 900)
        out.write("\nCurrents: one user's period as Currents writes it: a SessionStart file, then a Purchase file\n")
        out.write(
            "          and a CustomEvent file, merged into one profile: one generation after the settle window.\n"
        )
        with CurrentsSandbox() as box:
            first = box.process(box.upload(story[:1]))
            out.write(f"  SessionStart file alone: scheduled {first['scheduled']}, generated {first['generated']}\n")
            rest = box.process(box.upload(story[1:]))
            out.write(f"  Purchase + CustomEvent files: scheduled {rest['scheduled']}, generated {rest['generated']}\n")
            status, body = box.get_content("braze-demo")
            out.write(f"  GET /content/braze-demo -> {status}: {body['content']['heading']!r}\n")
            out.write(f"    {body['content']['details']['intro']}\n")
            one_period = (first["generated"], rest["generated"]) == (0, 1) and "Ocean Lab season pass" in str(body)
            out.write("\n  40 users' events in 6 Avro files (3 event types, 3 codecs, duplicates, machine opens);\n")
            out.write("  the offline generator; then Braze's Connected Content call, in both shapes.\n")
            report = box.process(box.upload([Path(tmp) / "sample"]))
            out.write(_currents_summary(report))
            status, plain = box.get_content("braze-00000")
            out.write(f"  GET /content/braze-00000 -> {status}\n")
            out.write("  " + json.dumps(plain, ensure_ascii=False, indent=2).replace("\n", "\n  ") + "\n")
            status, typed = box.get_content(None, {"user_id": "braze-00000", "format": "dynamodb"})
            heading = typed["Item"]["data"]["M"]["heading"]["S"]
            out.write(f"  GET /content?user_id=braze-00000&format=dynamodb -> {status}\n")
            out.write(f"  {{{{result.Item.data.M.heading.S}}}} renders: {heading}\n")
            anonymous = box.get_content(None, {"external_id": ""})
            out.write(f"  GET /content?external_id= (anonymous) -> {anonymous[0]}, default {anonymous[1]['default']}\n")
            refused = box.get_content("braze-00000", token="not-the-token")[0]  # noqa: S106 - a wrong token on purpose
            missing = box.get_content("braze-00000", authorization=False)[0]
            out.write(f"  with a wrong token: {refused}; without the Authorization header: {missing}\n")
    return one_period and report["failed"] == 0 and report["generated"] == 40


if __name__ == "__main__":
    sys.exit(main())
