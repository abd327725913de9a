"""`auction-replay export --redis URL DIR`: the scale-out's case streams as journal files, verified.

Every case stream under the namespace is read back and rebuilt through the verifier
(auction_engine.cluster), written as an export file, and that file verified again as
`auction-replay verify` does. Problems on the Redis side (a foreign key, a mistyped key,
a malformed entry, a broken chain) are printed with their code; the exit code is 1 then.
"""

from __future__ import annotations

import sys
from pathlib import Path

import trio
from coredis.exceptions import RedisError

from auction_engine.cluster import ClusterError, ExportReport, Layout, StreamJournal, connect, export_streams

from .verify import verify

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _cause(exc: BaseException) -> BaseException:
    """The one exception inside (nested) exception groups of one."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


async def _export(url: str, namespace: str, directory: Path, case: str | None) -> ExportReport:
    async with connect(url) as client:
        return await export_streams(StreamJournal(client, Layout(namespace)), directory,
                                    None if case is None else [case])


def export_redis(url: str, namespace: str, directory: Path, case: str | None = None) -> int:
    """Export, verify and print; the exit code (0 all good, 1 a problem, 2 Redis unreachable)."""
    try:
        report = trio.run(_export, url, namespace, directory, case)
    except Exception as exc:  # the client's task group wraps what failed: look inside
        cause = _cause(exc)
        if not isinstance(cause, ClusterError | RedisError | OSError):  # the server unreachable, DIR unwritable
            raise
        print(f"auction-replay: {url}: {cause}", file=sys.stderr)
        return EXIT_USAGE
    failed = bool(report.problems)
    for case_report, path in report.written:
        result = verify(path)
        failed = failed or not result.ok
        verdict = "OK" if result.ok else f"FAILED {result.problem.code if result.problem else 'torn_tail'}"
        print(f"{path}: case {case_report.case_id}, {case_report.records} records, tokens "
              f"{','.join(map(str, case_report.tokens))}, head {case_report.head}: {verdict}")
    for problem in report.problems:
        print(f"REFUSED {problem}", file=sys.stderr)
    print(f"{len(report.written)} cases exported to {directory}, {len(report.problems)} problems")
    return EXIT_FAILED if failed else EXIT_OK
