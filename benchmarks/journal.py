"""Journal benchmark: durable records per second with group commit, against the raw limit of write + fsync.

    python -m benchmarks.journal [--quick] [--producers N] [--auctions N] [--records N] [--repeat N]
                                 [--seed S] [--dir PATH] [--max-batch N] [--max-delay S]
                                 [--sync-in process|thread] [--split-from N] [--no-pipeline]

The workload: a few auctions of one lot each, one bidder per producer task, every bidder
walking its own price down by legitimate steps (`improve_on: own`, so a bid stays valid
whatever the interleaving and the wall-clock time it gets); about 2% of the bids improve
too little and are rejected (`insufficient_step`, journaled too). The bids are built
before any timing. Each repetition then measures, on fresh journal directories:

- durable throughput: `--producers` trio tasks bid through `Runtime` as a room takes a
  WebSocket bidder's bids: `runtime.post(PlaceBid(runtime.now(), ...), on_durable, on_lost)`
  (stamp, core, frame, group commit, fsync, then the callback, in journal order), each
  task parked until its bid's callback wakes it (a bidder awaiting its ack) before its
  next bid; records/s = bids / wall time from the start signal to the last ack. Every
  bid's ack latency is timed (post to wake-up);
- in the same repetition, the raw limit: the exact frames that run wrote (read back from
  its segments), joined into the batches the writer made (sizes from the writer's `batch_written`),
  each written with os.write + os.fdatasync into a fresh file: records / total seconds;
  ratio = durable / raw;
- the naive baseline: one os.write + os.fdatasync per record (the first records only);
- the journal alone: the same records (what the first repetition's journal holds, read
  back as time, auction, packed command and outcome) made durable again in a fresh
  directory by `--producers` trio tasks, each taking the next record in journal order,
  framing it with the journal's encoder (`Journaled.record`: sequences, chain, msgpack,
  CRCs), `writer.append`, `await writer.wait_durable`, then the next: the journal's own
  cost (encoding, group commit, write, fdatasync, waking the producer) without the core's
  decisions or the runtime, against its raw limit (the same bytes in its own batches);
  the files it writes must equal the original byte for byte;
- the same service run with `durability="none"` (no fsync): its ack latency is the
  baseline of the *added* ack latency (fsync p50/p99 minus no-sync p50/p99, each over the
  pooled acks of every repetition; a difference of two noisy figures, it can come out
  slightly negative).

The service runs keep the garbage collector on with the service's thresholds
(`gateway.app.GC_THRESHOLDS`: full collections kept rare, as `serve` sets them). Then, on
the last repetition's fsync journal: verify-and-replay records/s, the auditors' tool as
`auction-replay verify` runs it (`replay.verify`: framing, CRCs, segment order, sequences,
every chain, re-execution of every record through the core comparing every outcome; an
engine journal's auctions shared by one process per CPU), and the same in one process,
against their raw limit (one process reads the segments, walks the frames,
msgpack-decodes each payload), and for reference `Journaled.submit` producing the same
records with no trio and no IO (the CPU floor of the durable path), interleaved, garbage
collector off, median of `--repeat`; then `recover(dir)` seconds (collector on, as at a
restart), scaled to one million records. Recovery must give the state hash the live
engine had; the benchmark raises if the engine's outcomes, record counts or batch sizes
differ from the workload's.

Each producer waits for its ack before its next bid, so at most `--producers` bids are in
flight and a group-commit batch holds at most that many records.

Human-readable lines go first; the last line is one JSON object: `durable_records_per_s`,
`raw_records_per_s`, `ratio`, `ack_p50_ms` / `ack_p99_ms` (the added ack latency: fsync
minus no-sync), `journal_alone_records_per_s`, `journal_alone_raw_records_per_s`,
`journal_alone_ratio`, `journal_alone_ack_p50_ms` / `_p99_ms` (each record's time from its
framing to its producer's wake-up), `verify_records_per_s`,
`verify_one_process_records_per_s`, ..., `targets` and `details`.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import msgpack
import trio

from auction_engine.journal.writer import (
    DEFAULT_MAX_BATCH,
    DEFAULT_MAX_DELAY,
    DEFAULT_SPLIT_FROM,
    DEFAULT_SYNC_IN,
    SYNC_MODES,
)
from replay.verify import verify_jobs

from .common import Result, banner, emit, machine, mode, parser, percentile_ms, quantile, quick_defaults, runs_s, stamp
from .journal_alone import JournalRun, Records, batched, frames_digest, journal_frames, journal_run, raw_sync
from .journal_replay import checkpoint_times, recovery_times, verify_throughput
from .journal_service import ServiceRun, Workload, build_workload, check_run, service_run

# -- one repetition ------------------------------------------------------------------------


@dataclass
class Repetition:
    durable: ServiceRun
    nosync: ServiceRun
    raw_s: float
    naive_records: int
    naive_s: float
    journal_bytes: int
    alone: JournalRun
    alone_raw_s: float
    records: Records  # what the journal alone was given
    journal: Path  # the fsync run's directory (kept for the last repetition only)


def repetition(root: Path, n: int, work: Workload, args: argparse.Namespace, records: Records | None) -> Repetition:
    """The service run (fsync) and its raw limit and naive baseline; the journal alone with
    `records` (the first repetition's: read from its journal when None) and its raw limit;
    the service run without fsync."""
    durable_dir = root / f"fsync-{n}"
    durable = trio.run(service_run, durable_dir, work, "fsync", args.max_batch, args.max_delay, args.sync_in,
                       args.split_from, args.pipeline)
    check_run(work, durable)
    header, frames = journal_frames(durable_dir)
    frames = frames[durable.first_record:]  # the auctions' creation precedes the run
    batches = batched(frames, durable.batch_sizes)
    raw_s = raw_sync(root / "raw.journal", header, batches)
    naive = frames[:args.naive]
    naive_s = raw_sync(root / "naive.journal", header, naive)
    journal_bytes = sum(len(b) for b in batches)
    del frames, batches, naive
    records = records or Records.read(durable_dir)
    alone_dir = root / f"alone-{n}"
    alone = trio.run(journal_run, alone_dir, records.items, args.producers, args)
    header, frames = journal_frames(alone_dir)
    if len(alone.samples_ns) != len(records.items) or frames_digest(frames) != records.digest:
        raise RuntimeError("the journal alone did not write the records it was given, byte for byte")
    alone_raw_s = raw_sync(root / "raw-alone.journal", header, batched(frames, alone.batch_sizes))
    del frames
    shutil.rmtree(alone_dir)
    nosync_dir = root / f"none-{n}"
    nosync = trio.run(service_run, nosync_dir, work, "none", args.max_batch, args.max_delay, args.sync_in,
                      args.split_from, args.pipeline)
    check_run(work, nosync)
    shutil.rmtree(nosync_dir)
    return Repetition(durable, nosync, raw_s, min(args.naive, durable.records), naive_s, journal_bytes, alone,
                      alone_raw_s, records, durable_dir)


# -- figures -------------------------------------------------------------------------------


def latency(runs: Sequence[ServiceRun]) -> Result:
    """Ack latency percentiles over every bid of the runs, pooled (ms)."""
    samples = sorted(s for r in runs for s in r.samples_ns)
    return {f"p{name}_ms": round(percentile_ms(samples, q), 3)
            for name, q in (("50", 0.50), ("90", 0.90), ("99", 0.99), ("999", 0.999), ("100", 1.0))}


def batch_summary(runs: Sequence[ServiceRun]) -> Result:
    """The distribution of the group-commit batch sizes (records per write + fsync)."""
    sizes = sorted(s for r in runs for s in r.batch_sizes)
    seconds = [s for r in runs for s in r.batch_seconds]
    return {
        "batches": len(sizes), "mean": round(statistics.fmean(sizes), 1), "p10": quantile(sizes, 0.1),
        "median": quantile(sizes, 0.5), "p90": quantile(sizes, 0.9), "p99": quantile(sizes, 0.99), "max": sizes[-1],
        "writer_ms_per_batch": round(statistics.fmean(seconds) * 1e3, 3),
    }


def mount_of(path: Path) -> str:
    """The file system the journal is on (from /proc/mounts), e.g. "ext4 on /dev/vda"."""
    try:
        mounts = [line.split()[:3] for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return "unknown"
    real = str(path.resolve())
    best = max((m for m in mounts if real == m[1] or real.startswith(m[1].rstrip("/") + "/")),
               key=lambda m: len(m[1]), default=None)
    return f"{best[2]} on {best[0]} ({best[1]})" if best else "unknown"


@dataclass
class Settings:
    mode: str
    producers: int
    auctions: int
    records: int
    repeat: int
    naive: int
    extra: Result = field(default_factory=dict)


def summarize(work: Workload, reps: list[Repetition], verify_s: list[float], single_s: list[float],
              read_s: list[float], submit_s: list[float], recovery_s: list[float],
              checkpoint_s: tuple[list[float], int, list[float]], settings: Settings,
              directory: Path, wall_s: float) -> Result:
    med = statistics.median
    durable = med(r.durable.records_per_s for r in reps)
    raw = med(r.durable.records / r.raw_s for r in reps)
    nosync = med(r.nosync.records_per_s for r in reps)
    naive = med(r.naive_records / r.naive_s for r in reps)
    synced = latency([r.durable for r in reps])
    unsynced = latency([r.nosync for r in reps])
    records = work.bids + len(work.auction_ids)  # in the verified journal: creations and bids
    verify_per_s = records / med(verify_s)
    single_per_s = records / med(single_s)
    read_per_s = records / med(read_s)
    recovery_per_million = med(recovery_s) / records * 1e6
    added_p50 = round(synced["p50_ms"] - unsynced["p50_ms"], 3)
    added_p99 = round(synced["p99_ms"] - unsynced["p99_ms"], 3)
    bytes_per_record = statistics.fmean(r.journal_bytes / r.durable.records for r in reps)
    alone = med(r.alone.records_per_s for r in reps)
    alone_raw = med(len(r.alone.samples_ns) / r.alone_raw_s for r in reps)
    alone_ns = sorted(x for r in reps for x in r.alone.samples_ns)
    alone_p50, alone_p99 = round(percentile_ms(alone_ns, 0.5), 3), round(percentile_ms(alone_ns, 0.99), 3)
    targets = {
        "durable_records_per_s_ge_100000": durable >= 100_000,
        "ratio_ge_0.7": durable / raw >= 0.7,
        "added_ack_p99_ms_le_5": added_p99 <= 5,
        "verify_records_per_s_ge_300000": verify_per_s >= 300_000,
        "journal_alone_records_per_s_ge_100000": alone >= 100_000,
        "journal_alone_ratio_ge_0.7": alone / alone_raw >= 0.7,
        "journal_alone_ack_p99_ms_le_5": alone_p99 <= 5,
    }
    return {
        "durable_records_per_s": round(durable), "raw_records_per_s": round(raw), "ratio": round(durable / raw, 3),
        "journal_alone_records_per_s": round(alone), "journal_alone_raw_records_per_s": round(alone_raw),
        "journal_alone_ratio": round(alone / alone_raw, 3), "journal_alone_ack_p50_ms": alone_p50,
        "journal_alone_ack_p99_ms": alone_p99,
        "naive_records_per_s": round(naive), "nosync_records_per_s": round(nosync),
        "ack_p50_ms": added_p50, "ack_p99_ms": added_p99,
        "ack_fsync_p50_ms": synced["p50_ms"], "ack_fsync_p99_ms": synced["p99_ms"],
        "ack_nosync_p50_ms": unsynced["p50_ms"], "ack_nosync_p99_ms": unsynced["p99_ms"],
        "verify_records_per_s": round(verify_per_s), "verify_one_process_records_per_s": round(single_per_s),
        "verify_raw_records_per_s": round(read_per_s),
        "verify_ratio": round(verify_per_s / read_per_s, 3),
        "recovery_s_per_million": round(recovery_per_million, 2),
        "checkpoint_write_s": round(med(checkpoint_s[0]), 3), "checkpoint_bytes": checkpoint_s[1],
        "recovery_from_checkpoint_s": round(med(checkpoint_s[2]), 3),
        "targets": targets, "mode": settings.mode, "repeat": settings.repeat, "producers": settings.producers,
        "auctions": settings.auctions, "records": settings.records,
        **stamp(wall_s),
        "machine": machine(msgpack=".".join(map(str, msgpack.version)), trio=trio.__version__,
                           journal_fs=mount_of(directory)),
        "details": {
            "accepted": work.accepted, "rejected": work.rejected, "bytes_per_record": round(bytes_per_record, 1),
            "durable_mb_per_s": round(durable * bytes_per_record / 1e6, 2),
            "durable_runs_s": runs_s([r.durable.seconds for r in reps]),
            "raw_runs_s": runs_s([r.raw_s for r in reps]),
            "nosync_runs_s": runs_s([r.nosync.seconds for r in reps]),
            "naive_records": reps[0].naive_records, "naive_runs_s": runs_s([r.naive_s for r in reps]),
            "batches_fsync": batch_summary([r.durable for r in reps]),
            "batches_nosync": batch_summary([r.nosync for r in reps]),
            "journal_alone_runs_s": runs_s([r.alone.seconds for r in reps]),
            "journal_alone_raw_runs_s": runs_s([r.alone_raw_s for r in reps]),
            "journal_alone_batch_median": statistics.median(s for r in reps for s in r.alone.batch_sizes),
            "raw_ms_per_batch": round(med(r.raw_s / len(r.durable.batch_sizes) for r in reps) * 1e3, 3),
            "ack_fsync": synced, "ack_nosync": unsynced,
            "verified_records": records,
            "verify_runs_s": runs_s(verify_s),
            "verify_one_process_runs_s": runs_s(single_s),
            "verify_raw_runs_s": runs_s(read_s),
            "submit_offline_records_per_s": round(records / med(submit_s)),
            "submit_offline_runs_s": runs_s(submit_s),
            "recovery_runs_s": runs_s(recovery_s),
            "checkpoint_write_runs_s": runs_s(checkpoint_s[0]),
            "recovery_from_checkpoint_runs_s": runs_s(checkpoint_s[2]),
            **settings.extra,
        },
    }


def describe(out: Result) -> list[str]:
    d = out["details"]
    b = d["batches_fsync"]
    return [
        f"durable: {out['durable_records_per_s']:,} records/s with {out['producers']} producers "
        f"({d['durable_mb_per_s']} MB/s, {d['bytes_per_record']} B per record); raw limit "
        f"{out['raw_records_per_s']:,} (write + fdatasync in the same {b['batches']:,} batches: mean "
        f"{b['mean']}, median {b['median']}, p90 {b['p90']}, max {b['max']} records); ratio {out['ratio']:.2f}",
        f"the journal alone (the same records framed, chained and made durable by {out['producers']} producers; "
        f"no core, no runtime): {out['journal_alone_records_per_s']:,} records/s; raw limit "
        f"{out['journal_alone_raw_records_per_s']:,} (its batches: median {d['journal_alone_batch_median']}); ratio "
        f"{out['journal_alone_ratio']:.2f}; latency p50 {out['journal_alone_ack_p50_ms']:.3f} ms, "
        f"p99 {out['journal_alone_ack_p99_ms']:.3f} ms",
        f"no fsync: {out['nosync_records_per_s']:,} records/s; naive (one fdatasync per record): "
        f"{out['naive_records_per_s']:,} records/s; Journaled.submit alone (no trio, no IO): "
        f"{d['submit_offline_records_per_s']:,} records/s",
        f"ack latency: fsync p50 {out['ack_fsync_p50_ms']:.3f} ms, p99 {out['ack_fsync_p99_ms']:.3f} ms; "
        f"no fsync p50 {out['ack_nosync_p50_ms']:.3f} ms, p99 {out['ack_nosync_p99_ms']:.3f} ms; "
        f"added p50 {out['ack_p50_ms']:.3f} ms, p99 {out['ack_p99_ms']:.3f} ms",
        f"verify and replay: {out['verify_records_per_s']:,} records/s ({d['verify_processes']} processes; in one: "
        f"{out['verify_one_process_records_per_s']:,}); raw limit (read + msgpack decode, one process) "
        f"{out['verify_raw_records_per_s']:,}; ratio {out['verify_ratio']:.2f}",
        f"recovery: {out['recovery_s_per_million']:.2f} s per million records "
        f"({d['verified_records']:,} records in {statistics.median(d['recovery_runs_s']):.2f} s); from a "
        f"checkpoint of them all: {out['recovery_from_checkpoint_s']:.3f} s (writing it: "
        f"{out['checkpoint_write_s']:.3f} s, {out['checkpoint_bytes']:,} bytes)",
    ]


def main(argv: Sequence[str] | None = None) -> None:
    options = parser("benchmarks.journal", __doc__, "smaller runs: the whole run takes well under 1 min")
    options.add_argument("--producers", type=int, default=64, help="concurrent producer tasks (default 64)")
    options.add_argument("--auctions", type=int, default=4, help="auctions the producers bid in (default 4)")
    options.add_argument("--records", type=int, help="bids per run (default 300,000; --quick 50,000)")
    options.add_argument("--repeat", type=int, default=3, help="repetitions (median; default 3)")
    options.add_argument("--naive", type=int, help="records of the naive baseline (default 5,000; --quick 1,000)")
    options.add_argument("--seed", type=int, default=2026, help="seed of the bids")
    options.add_argument("--dir", type=Path, help="where the journals go (default: the temp dir; use a real disk)")
    options.add_argument("--max-batch", type=int, default=DEFAULT_MAX_BATCH, help="writer max_batch")
    options.add_argument("--max-delay", type=float, default=DEFAULT_MAX_DELAY, help="writer max_delay (seconds)")
    options.add_argument("--sync-in", choices=SYNC_MODES, default=DEFAULT_SYNC_IN,
                        help="where the writer's fdatasync runs (default: %(default)s)")
    options.add_argument("--split-from", type=int, default=DEFAULT_SPLIT_FROM,
                        help="an idle writer syncs half of a burst of this many records first (0: never; "
                             "default %(default)s)")
    options.add_argument("--no-pipeline", dest="pipeline", action="store_false",
                        help="the writer never sends a batch behind the one being synced (the old behaviour)")
    args = options.parse_args(argv)
    quick_defaults(args, {"records": (50_000, 300_000), "naive": (1_000, 5_000)})
    if not 1 <= args.auctions <= args.producers or args.records < args.producers or args.repeat < 1:
        options.error("need 1 <= auctions <= producers <= records and repeat >= 1")
    t0 = time.perf_counter()
    work = build_workload(args.producers, args.auctions, args.records, random.Random(f"{args.seed}-journal"))
    root = Path(tempfile.mkdtemp(prefix="bench-journal-", dir=args.dir))
    print(f"{banner(args.quick)}, {args.repeat} repetitions; "
          f"{args.records:,} bids per run from {args.producers} producers in {args.auctions} auctions; "
          f"journals in {root} ({mount_of(root)})", flush=True)
    try:
        reps: list[Repetition] = []
        for n in range(args.repeat):
            rep = repetition(root, n, work, args, reps[0].records if reps else None)
            if reps:
                shutil.rmtree(reps[-1].journal)
            reps.append(rep)
            print(f"  run {n + 1}: durable {rep.durable.records_per_s:,.0f} records/s, raw "
                  f"{rep.durable.records / rep.raw_s:,.0f}, no fsync {rep.nosync.records_per_s:,.0f}, "
                  f"naive {rep.naive_records / rep.naive_s:,.0f}; the journal alone "
                  f"{rep.alone.records_per_s:,.0f}, its raw {len(rep.alone.samples_ns) / rep.alone_raw_s:,.0f}",
                  flush=True)
        journal = reps[-1].journal
        records = work.bids + args.auctions
        verify_s, single_s, read_s, submit_s = verify_throughput(journal, records, args.repeat)
        processes = verify_jobs(journal)
        recovery_s = recovery_times(journal, records, reps[-1].durable.state_hash, args.repeat)
        checkpoint_s = checkpoint_times(journal, records, reps[-1].durable.state_hash, args.repeat)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    settings = Settings(mode(args.quick), args.producers, args.auctions, args.records, args.repeat, args.naive,
                        {"max_batch": args.max_batch, "max_delay": args.max_delay, "sync_in": args.sync_in,
                         "split_from": args.split_from, "pipeline": args.pipeline,
                         "seed": args.seed, "verify_processes": processes})
    out = summarize(work, reps, verify_s, single_s, read_s, submit_s, recovery_s, checkpoint_s, settings, root.parent,
                    time.perf_counter() - t0)
    for line in describe(out):
        print(line, flush=True)
    emit(out)


if __name__ == "__main__":
    main()
