"""The `auction-replay` command line: the auditors' tool over a journal.

verify PATH [--auction ID] [--jobs N] [--json] | export PATH --auction ID -o FILE |
export --redis URL DIR [--namespace NS] [--auction ID] |
timeline PATH --auction ID [--format csv|json] [--reveal] | report PATH --auction ID -o FILE [--reveal] |
minutes PATH TENDER --which opening|evaluation --format html|pdf [--lang fr|en] -o FILE |
ocds PATH [-o FILE] [--uri URI] [--publisher NAME] [--prefix OCID_PREFIX] [--collective-currency C]
[--collective-decimals D] | verify-receipt RECEIPT.json --public-key FILE [--journal PATH].
Exit codes: 0 everything checked matches; 1 the journal failed verification (the first
problem is printed); 2 bad usage or an unreadable path.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from auction_engine.journal import JournalCorruption
from auction_engine.journal.format import SEGMENT_SUFFIX

from .history import render_timeline, timeline
from .ocds import DEFAULT_PREFIX
from .verify import MAX_JOBS, PARALLEL_MIN_BYTES, VerifyResult, export, verify

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `auction-replay` console script."""
    parser = argparse.ArgumentParser(prog="auction-replay", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("verify", help="check framing, chains and sequences, and re-execute every command")
    p.add_argument("path", help="journal directory (or the service's data directory) or segment/export file")
    p.add_argument("--auction", help="re-execute only this auction")
    p.add_argument("--jobs", type=_jobs, metavar="N",
                   help=f"share an engine journal's auctions among N processes (at most {MAX_JOBS}; 1: one "
                        f"process); default: one per CPU for a journal of {PARALLEL_MIN_BYTES >> 20} MiB or more, "
                        "else one; with --auction, always one. The verdict and report are the same whatever N")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p = commands.add_parser("export", help="write one auction's records as a journal that verifies alone; with "
                            "--redis, every case's stream as a journal file in the directory PATH")
    p.add_argument("path")
    p.add_argument("--auction", help="the auction (required without --redis; with it: only this case)")
    p.add_argument("-o", "--output", help="the file to write (without --redis)")
    p.add_argument("--redis", metavar="URL", help="read the cases' streams from this Redis (redis://host:port/db)")
    p.add_argument("--namespace", default="ae", help="the scale-out's key namespace (default ae)")
    p = commands.add_parser("timeline", help="every bid: time, pseudonym, amount, outcome, rank after it")
    p.add_argument("path")
    p.add_argument("--auction", required=True)
    p.add_argument("--format", choices=("csv", "json"), default="csv")
    p.add_argument("--reveal", action="store_true", help="add the bidders' identities")
    p = commands.add_parser("report", help="a standalone HTML audit report")
    p.add_argument("path")
    p.add_argument("--auction", required=True)
    p.add_argument("-o", "--output", required=True, help="the HTML file to write")
    p.add_argument("--reveal", action="store_true", help="show identities (once every lot has ended)")
    p = commands.add_parser("minutes", help="a tender's minutes (procès-verbal), HTML or PDF, after verifying")
    p.add_argument("path")
    p.add_argument("tender", help="the tender's id")
    p.add_argument("--which", choices=("opening", "evaluation"), required=True,
                   help="the opening session's minutes or the evaluation's")
    p.add_argument("--format", choices=("html", "pdf"), default="pdf")
    p.add_argument("--lang", choices=("fr", "en"), default="fr")
    p.add_argument("-o", "--output", required=True, help="the file to write")
    p = commands.add_parser("ocds", help="an OCDS 1.1 release package of every auction and tender, after verifying")
    p.add_argument("path")
    p.add_argument("-o", "--output", help="the JSON file to write (default: standard output)")
    p.add_argument("--uri", default="urn:x-auction-engine:ocds:release-package",
                   help="the package's uri (where it will be published)")
    p.add_argument("--publisher", default="auction-engine", help="the publisher's name")
    p.add_argument("--prefix", default=DEFAULT_PREFIX, help=f"the ocid prefix registered with the OCP "
                                                            f"(default {DEFAULT_PREFIX}, a placeholder)")
    p.add_argument("--collective-currency", default="MAD", help="the grouped purchases' currency (default MAD)")
    p.add_argument("--collective-decimals", type=int, choices=range(7), default=2, metavar="0-6",
                   help="the decimals of its minor units (default 2)")
    p = commands.add_parser("verify-receipt", help="check a tender deposit's or withdrawal's signed receipt")
    p.add_argument("path", help="the receipt (JSON, as the RPC answered it)")
    p.add_argument("--public-key", required=True, help="the service's receipt key: PEM, or its raw key in hex")
    p.add_argument("--journal", help="also check the journal's record at the receipt's position")
    args = parser.parse_args(argv)
    if args.command == "verify-receipt":
        return _verify_receipt(args)
    if args.command == "export" and args.redis:
        from .redis_export import export_redis

        return export_redis(args.redis, args.namespace, Path(args.path), args.auction)
    if args.command == "export" and not (args.auction and args.output):
        parser.error("export: --auction and -o are required (or --redis URL DIR)")
    if not Path(args.path).exists():
        print(f"auction-replay: {args.path}: no such file or directory", file=sys.stderr)
        return EXIT_USAGE
    args.path = str(journal_of(Path(args.path)))
    try:
        code: int = {"verify": _verify, "export": _export, "timeline": _timeline, "report": _report,
                     "minutes": _minutes, "ocds": _ocds}[args.command](args)
    except JournalCorruption as exc:
        print(f"auction-replay: FAILED: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as exc:
        print(f"auction-replay: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return code


def journal_of(path: Path) -> Path:
    """The journal at `path`: a service's data directory stands for DATA_DIR/journal."""
    inner = path / "journal"
    if path.is_dir() and inner.is_dir() and not any(q.name.endswith(SEGMENT_SUFFIX) for q in path.iterdir()):
        return inner
    return path


def _jobs(text: str) -> int:
    """`--jobs`: a whole number of processes, at least 1 (argparse reports anything else)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of processes, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def describe(result: VerifyResult) -> str:
    """A verification result for people."""
    lines = [f"{result.path}: {result.kind or '?'} journal, {result.records} records checked, "
             f"{result.replayed} re-executed in {result.seconds:.2f} s"]
    for aid, a in result.auctions.items():
        lines.append(f"  auction {aid}: {a.records} records (gseq {a.first_gseq}-{a.last_gseq}), head {a.head}")
    if result.problem is not None:
        p = result.problem
        lines.append(f"FAILED {p.code}: {p.message}")
        if p.location is not None:
            lines.append(f"  where:    {p.location}")
        if p.gseq is not None:
            lines.append(f"  record:   gseq {p.gseq}")
        if p.expected is not None or p.found is not None:
            lines.append(f"  expected: {json.dumps(p.expected, default=repr)}")
            lines.append(f"  found:    {json.dumps(p.found, default=repr)}")
    if result.torn is not None:
        lines.append(f"FAILED torn_tail: {result.torn} (an engine restart truncates it)")
    if result.ok:
        lines.append(f"OK: every record verified; state {result.state_hash}")
    return "\n".join(lines)


def _verify(args: argparse.Namespace) -> int:
    result = verify(args.path, args.auction, jobs=args.jobs)
    print(json.dumps(result.to_dict(), indent=2, default=repr) if args.json else describe(result))
    return EXIT_OK if result.ok else EXIT_FAILED


def _export(args: argparse.Namespace) -> int:
    result = export(args.path, args.auction, args.output)
    print(describe(result))
    return EXIT_OK if result.ok else EXIT_FAILED


def _timeline(args: argparse.Namespace) -> int:
    rows = timeline(args.path, args.auction, reveal=args.reveal)
    sys.stdout.write(render_timeline(rows, args.format))
    return EXIT_OK


def _report(args: argparse.Namespace) -> int:
    from auction_engine.engine import QueryError

    from . import Unverified, report

    try:
        html = report(args.path, args.auction, reveal=args.reveal)
    except Unverified as exc:
        print(describe(exc.result), file=sys.stderr)
        return EXIT_FAILED
    except QueryError as exc:  # no such auction (a tender's case: the report covers auctions only)
        print(f"auction-replay: {exc}", file=sys.stderr)
        return EXIT_USAGE
    Path(args.output).write_text(html, encoding="utf-8")
    print(f"wrote {args.output} ({len(html)} bytes)")
    return EXIT_OK


def _minutes(args: argparse.Namespace) -> int:
    from . import Unverified, tender_minutes
    from .minutes import MinutesError

    try:
        data = tender_minutes(args.path, args.tender, args.which, args.format, args.lang)
    except Unverified as exc:
        print(describe(exc.result), file=sys.stderr)
        return EXIT_FAILED
    except MinutesError as exc:
        print(f"auction-replay: {exc.code}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    write_durably(Path(args.output), data)
    print(f"wrote {args.output} ({len(data)} bytes)")
    return EXIT_OK


def _ocds(args: argparse.Namespace) -> int:
    from . import Unverified, ocds_export

    try:
        package = ocds_export(args.path, uri=args.uri, publisher=args.publisher, prefix=args.prefix,
                              collective_currency=(args.collective_currency, args.collective_decimals))
    except Unverified as exc:
        print(describe(exc.result), file=sys.stderr)
        return EXIT_FAILED
    data = (json.dumps(package, indent=2, ensure_ascii=False) + "\n").encode()
    if args.output is None:
        sys.stdout.write(data.decode())
    else:
        write_durably(Path(args.output), data)
        print(f"wrote {args.output} ({len(package['releases'])} releases, {len(data)} bytes)")
    return EXIT_OK


def write_durably(path: Path, data: bytes) -> None:
    """Write a file whole or not at all: a temporary file, fsynced, then renamed."""
    tmp = path.with_name(path.name + ".partial")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _verify_receipt(args: argparse.Namespace) -> int:
    from tenders.receipts import ReceiptError

    from .receipts import verify_receipt

    journal = None if args.journal is None else str(journal_of(Path(args.journal)))
    try:
        fields = verify_receipt(args.path, args.public_key, journal)
    except ReceiptError as exc:
        print(f"auction-replay: FAILED {exc.code}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except JournalCorruption as exc:
        print(f"auction-replay: FAILED: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as exc:
        print(f"auction-replay: {exc}", file=sys.stderr)
        return EXIT_USAGE
    checked = " and journal record" if journal else ""
    print(f"OK: receipt{checked} verified: {fields['kind']} of {fields['bidder_id']} in tender {fields['tender_id']} "
          f"at {fields['time']}, gseq {fields['gseq']}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
