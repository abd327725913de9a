"""Tenders benchmark: durable deposits with receipts, and the opening and evaluation at scale, against their raw limits.

    python -m benchmarks.tenders [--quick] [--bidders N] [--lines N] [--open-bidders N] [--repeat N]
                                 [--seed S] [--dir PATH]

Two measures, each against the raw limit measured in the same run, interleaved, median of
`--repeat` repetitions:

- **deposits**: `--bidders` trio tasks, each a bidder holding its sealed offer (an admin
  envelope and a financial offer of `--lines` BPDE lines, sealed with HPKE before any
  timing), deposit at once through `Runtime` (`execute(DepositOffer)`: the tender kind's
  checks, the journal's group commit, fsync) and then sign the deposit's receipt as the
  service does (`tenders.receipts.make`, Ed25519); deposits/s = bidders / wall time from
  the start signal to the last receipt. Its raw limit: the very journal frames that run
  wrote, in the writer's own batches (from its `batch_written`), each batch's receipts
  signed (bare Ed25519 over the same canonical bytes) then written with os.write +
  os.fdatasync to a fresh file; ratio = durable / raw.
- **opening and evaluation**: a tender of `--open-bidders` bidders x `--lines` lines in the
  tender kind alone (no IO): the k-th `SubmitShare` (rebuild the key from the shares,
  open every envelope, parse every financial offer), then, every bidder admitted,
  `CloseAdmission` (the lot's evaluation: BPDE totals recomputed, P, the ranking, the
  award). Its raw limit: bare HPKE decryption (`tenders.sealing.open_envelope`) of the same
  envelopes; ratio = raw seconds / opening seconds.

Human-readable lines first; the last line is one JSON object: `deposits_per_s`,
`raw_deposits_per_s`, `deposit_ratio`, `opening_s`, `evaluation_s`, `raw_decrypt_s`,
`opening_ratio`, `machine`, `details`.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auction_engine.runtime import Runtime, wall_clock_us
from tenders import CloseAdmission, DecideAdmission, DepositOffer, PublishTender, SubmitShare, Tenders, TenderSpec
from tenders import receipts as signed
from tenders.messages import OfferDeposited, TenderLotAwarded
from tenders.offer import offer_json
from tenders.sealing import digest, new_key_pair, open_envelope, seal, share_digest, split_key

from .common import (
    Result,
    banner,
    emit,
    interleaved,
    machine,
    median_rate,
    mode,
    parser,
    quick_defaults,
    runs_s,
    stamp,
    timed,
)
from .journal_alone import batched, journal_frames, write_all
from .journal_service import Batches, service_gc

TENDER_ID = "AO-BENCH-1"
MEMBERS = ("m1", "m2", "m3")
THRESHOLD = 2
ESTIMATE = 1_000_000_00  # minor units
DAY_US = 86_400_000_000
Envelopes = tuple[tuple[str, bytes, bytes], ...]


# -- the workload ------------------------------------------------------------------------

@dataclass
class Tender:
    """A tender's key, shares and spec, and each bidder's sealed envelopes (built once)."""

    private: bytes
    shares: list[bytes]
    spec: TenderSpec
    envelopes: dict[str, Envelopes]


def offer(rng: random.Random, lines: int) -> bytes:
    """A financial offer of `lines` BPDE lines (quantity 2 each) near the estimate; its
    total is the lines' exact sum (not corrected at the evaluation)."""
    prices = [rng.randrange(ESTIMATE // lines // 4, ESTIMATE // lines * 3 // 4) for _ in range(lines)]
    total = sum(2 * p for p in prices)
    money = "{}.{:02d}".format
    return offer_json("MAD", {"L1": (money(*divmod(total, 100)),
                                     [(str(j + 1), "2", money(*divmod(p, 100))) for j, p in enumerate(prices)])})


def build_tender(bidders: int, lines: int, opening_at: int, rng: random.Random) -> Tender:
    private, public = new_key_pair()
    shares = split_key(private, THRESHOLD, len(MEMBERS))
    spec = TenderSpec("ministry", opening_at, (("L1", ESTIMATE),), public, MEMBERS,
                      tuple(share_digest(s) for s in shares), THRESHOLD, ask_days=0, answer_days=0)
    envelopes: dict[str, Envelopes] = {}
    for i in range(bidders):
        bidder = f"bidder-{i:05d}"
        sealed = []
        for part, content in (("admin", b"%PDF admin file of " + bidder.encode()), ("financial", offer(rng, lines))):
            ciphertext = seal(public, content, TENDER_ID, bidder, part)
            sealed.append((part, ciphertext, digest(ciphertext)))
        envelopes[bidder] = tuple(sealed)
    return Tender(private, shares, spec, envelopes)


# -- deposits through the runtime, with receipts -----------------------------------------------

@dataclass
class DepositRun:
    seconds: float
    first_record: int
    batch_sizes: list[int]
    signed_bytes: list[bytes]  # each receipt's canonical bytes, as signed


async def deposit_run(directory: Path, bidders: int, lines: int, key: Ed25519PrivateKey, seed: int) -> DepositRun:
    """Publish a tender opening in a day, then every bidder deposits at once and signs its receipt."""
    with service_gc():
        async with Runtime.open(directory, durability="fsync") as runtime:
            tender = build_tender(bidders, lines, wall_clock_us() + DAY_US, random.Random(seed))
            publish: Any = PublishTender(runtime.now(), TENDER_ID, tender.spec)  # the runtime's types name auctions'
            await runtime.execute(publish)
            writer = runtime.writer
            await writer.wait_durable(runtime.journaled.gseq)
            first = writer.stats["records"]
            batches = Batches()
            runtime.attach(batches)
            receipts: list[dict[str, Any]] = []
            go = trio.Event()

            async def bidder(bidder_id: str, envelopes: Envelopes) -> None:
                await go.wait()
                command: Any = DepositOffer(runtime.now(), TENDER_ID, bidder_id, envelopes, f"{bidder_id}-1")
                done = await runtime.execute(command)
                event: Any = done.events[-1]
                if type(event) is not OfferDeposited:
                    raise RuntimeError(f"deposit refused: {event}")
                receipts.append(signed.make(key, "deposit", TENDER_ID, bidder_id, list(event.digests), event.time,
                                            done.last_gseq))

            async with trio.open_nursery() as nursery:
                for bidder_id, envelopes in tender.envelopes.items():
                    nursery.start_soon(bidder, bidder_id, envelopes)
                await trio.sleep(0)
                t0 = time.perf_counter()
                go.set()
            elapsed = time.perf_counter() - t0
            if len(receipts) != bidders or writer.stats["records"] - first != bidders:
                raise RuntimeError(f"{len(receipts)} receipts, {writer.stats['records'] - first} records for "
                                   f"{bidders} bidders")
    canon = [signed.canonical({k: v for k, v in r.items() if k != "signature"}) for r in receipts]
    return DepositRun(elapsed, first, batches.sizes, canon)


def raw_deposits(path: Path, header: bytes, batches: list[bytes], sizes: list[int], canon: list[bytes],
                 key: Ed25519PrivateKey) -> float:
    """Seconds to sign each batch's receipts, then write and fdatasync the batch."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        write_all(fd, header)
        os.fdatasync(fd)
        sign, i = key.sign, 0
        t0 = time.perf_counter()
        for data, n in zip(batches, sizes, strict=True):
            for message in canon[i:i + n]:
                sign(message)
            i += n
            write_all(fd, data)
            os.fdatasync(fd)
        return time.perf_counter() - t0
    finally:
        os.close(fd)
        path.unlink()


def deposits(root: Path, args: argparse.Namespace) -> Result:
    key = Ed25519PrivateKey.generate()
    durable_s: list[float] = []
    raw_s: list[float] = []
    batches_seen: list[int] = []
    for n in range(args.repeat):  # each repetition: the service path, then its raw limit at once
        directory = root / f"deposits-{n}"
        run = trio.run(deposit_run, directory, args.bidders, args.lines, key, args.seed + n)
        header, frames = journal_frames(directory)
        frames = frames[run.first_record:]
        raw_s.append(raw_deposits(root / "raw.journal", header, batched(frames, run.batch_sizes), run.batch_sizes,
                                  run.signed_bytes, key))
        durable_s.append(run.seconds)
        batches_seen.append(len(run.batch_sizes))
        shutil.rmtree(directory)
    durable, raw = median_rate(args.bidders, durable_s), median_rate(args.bidders, raw_s)
    print(f"deposits: {durable:,.0f}/s durable with receipts, raw limit {raw:,.0f}/s (sign + write + fdatasync), "
          f"ratio {durable / raw:.2f}; {args.bidders} bidders at once, "
          f"{statistics.median(batches_seen):.0f} batches (median)")
    return {"deposits_per_s": round(durable), "raw_deposits_per_s": round(raw),
            "deposit_ratio": round(durable / raw, 3),
            "details": {"durable_runs_s": runs_s(durable_s), "raw_runs_s": runs_s(raw_s), "batches": batches_seen}}


# -- the opening and the evaluation, in the kind -------------------------------------------------

def opening_and_evaluation(args: argparse.Namespace) -> Result:
    start = 1_800_000_000_000_000
    tender = build_tender(args.open_bidders, args.lines, start + DAY_US, random.Random(args.seed))
    kind = Tenders()
    kind.handle(PublishTender(start, TENDER_ID, tender.spec))
    for i, (bidder, envelopes) in enumerate(tender.envelopes.items()):
        kind.handle(DepositOffer(start + 1 + i, TENDER_ID, bidder, envelopes, f"{bidder}-1"))
    at = start + DAY_US + 1
    kind.handle(SubmitShare(at, TENDER_ID, MEMBERS[0], tender.shares[0]))  # k - 1 shares: no opening yet
    before = kind.dump_state()
    bidders = list(tender.envelopes)

    def opening() -> Tenders:
        fresh = Tenders.load_state(before)
        events = fresh.handle(SubmitShare(at + 1, TENDER_ID, MEMBERS[1], tender.shares[1]))
        if len(events) != 2 + 2 * len(bidders):  # ShareAccepted, TenderOpened, one per envelope
            raise RuntimeError(f"the opening gave {len(events)} events")
        return fresh

    def raw() -> int:
        opened = 0
        for bidder, envelopes in tender.envelopes.items():
            for part, ciphertext, _ in envelopes:
                opened += len(open_envelope(tender.private, ciphertext, TENDER_ID, bidder, part)) > 0
        return opened

    opening_s: list[float] = []
    evaluation_s: list[float] = []
    raw_s: list[float] = []
    for _ in range(args.repeat):
        (o_s, r_s) = interleaved(1, [opening, raw])
        opened = opening()
        for i, bidder in enumerate(bidders):  # every bidder admitted (not timed)
            opened.handle(DecideAdmission(at + 2 + i, TENDER_ID, MEMBERS[2], bidder, True))
        e_s, events = _timed_close(opened, at + 3 + len(bidders))
        if type(events[-1]) is not TenderLotAwarded:
            raise RuntimeError(f"the evaluation gave {events[-1]}")
        opening_s += o_s
        raw_s += r_s
        evaluation_s.append(e_s)
    o, e, r = (statistics.median(x) for x in (opening_s, evaluation_s, raw_s))
    sealed = 2 * len(bidders)
    print(f"opening: {o:.2f} s for {len(bidders)} bidders x {args.lines} lines ({sealed} envelopes), raw HPKE "
          f"decryption {r:.2f} s, ratio {r / o:.2f}; evaluation (CloseAdmission) {e:.2f} s")
    return {"opening_s": round(o, 3), "evaluation_s": round(e, 3), "raw_decrypt_s": round(r, 3),
            "opening_ratio": round(r / o, 3),
            "details": {"opening_runs_s": runs_s(opening_s), "evaluation_runs_s": runs_s(evaluation_s),
                        "raw_runs_s": runs_s(raw_s), "open_bidders": len(bidders), "envelopes": sealed}}


def _timed_close(kind: Tenders, now: int) -> tuple[float, list[Any]]:
    return timed(kind.handle, CloseAdmission(now, TENDER_ID, MEMBERS[2]))


# -- main --------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> None:
    p = parser("benchmarks.tenders", __doc__, "300 depositing bidders, 5 repetitions (under a minute)")
    p.add_argument("--bidders", type=int, help="bidders depositing at once (quick 300, full 1000)")
    p.add_argument("--lines", type=int, default=200, help="BPDE lines per financial offer (200)")
    p.add_argument("--open-bidders", type=int, default=1000, help="bidders of the opened tender (1000)")
    p.add_argument("--repeat", type=int, help="repetitions (quick 5, full 7)")
    p.add_argument("--seed", type=int, default=20261203)
    p.add_argument("--dir", type=Path, help="where the journals go (default: a temporary directory)")
    args = p.parse_args(argv)
    quick_defaults(args, {"bidders": (300, 1000), "repeat": (5, 7)})
    print(f"tenders benchmark: {banner(args.quick)}", flush=True)
    t0 = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="tenders-bench-", dir=args.dir))
    try:
        dep = deposits(root, args)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    ope = opening_and_evaluation(args)
    emit({"benchmark": "tenders", "mode": mode(args.quick),
          **{k: v for k, v in dep.items() if k != "details"}, **{k: v for k, v in ope.items() if k != "details"},
          "machine": machine(), **stamp(time.perf_counter() - t0),
          "details": {"deposits": dep["details"], "opening": ope["details"], "bidders": args.bidders,
                      "lines": args.lines, "repeat": args.repeat}})


if __name__ == "__main__":
    main()
