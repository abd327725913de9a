"""Crash suite for the real service: `auction-engine serve` as a subprocess, under
continuous bid load from WebSocket bidders, killed with SIGKILL at random moments and
restarted on the same data directory, SERVE_CRASH_KILLS times (4 by default).

The auction is created and the bidders admitted over the RPC (portal key from the
settings file). Each bidder has its own room connection (`gateway.client.Room`) and bids
lower and lower, one bid in flight at a time, each with a new client_bid_id; now and then
one deliberately too high (rejected `insufficient_step`, also journaled). After each kill
the journal's sync child process (python -c ... recv_fds, in its own session) must have
exited by itself. After each restart every bidder first resends the bid it had in flight,
same client_bid_id: it must be answered `duplicate: true` exactly when it had been
journaled before the kill (its gseq is within what that start recovered), and placed now
otherwise. After the last restart the bidders stop, the RPC must show the lowest
acknowledged price as the best, and SIGTERM must stop the service gracefully (1001 to the
bidders, exit 0). Then, from the journal: every answer a client got is there exactly once
with that outcome (amount and time for acks), it holds no bid never sent and nothing
unanswered, each start's recovered state matches a fresh replay of its prefix, and the
whole journal verifies.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed, HandshakeError

from auction_engine.journal import JournalReader, Verifier
from auction_engine.money import format_amount
from auction_engine.timeutil import format_instant
from gateway.client import Room, RoomClosed, RpcClient
from replay import verify

KILLS = int(os.environ.get("SERVE_CRASH_KILLS", 4))
SEED = int(os.environ.get("SERVE_CRASH_SEED", time.time_ns() % 1_000_000))
BIDDERS = 5
AUCTION = "SC-1"
LOT = "L1"
STARTING_PRICE = 1_000_000_000  # minor units: 10,000,000.00 MAD
STEP = 7  # minor units between consecutive bids (all bidders share one descending sequence)
TOO_HIGH_EVERY = 9  # every 9th new bid of a bidder (once it has a standing bid) is at the starting price
PORTAL_KEY = "serve-crash-portal-key-0123456789abcdef"
TOKEN_SECRET = "serve-crash-token-secret-0123456789abcdefghijklmn"
STARTUP_TIMEOUT = 90.0  # a slow shared machine: imports, recovery, bind
BID_TIMEOUT = 30.0  # one answer (an fsync on a busy disk)
STOP_TIMEOUT = 40.0  # graceful stop: up to 10 s for the goodbyes, then the flush
SYNC_EXIT_TIMEOUT = 5.0  # the orphaned sync process must be gone by then

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")


def money(minor: int) -> str:
    return format_amount(minor, 2)


# --- processes, seen through /proc ---------------------------------------------------------------------------------


def proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, session) of a process, None if there is none."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = data.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1]), int(fields[3])


def proc_cmdline(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []


def is_syncer(pid: int) -> bool:
    args = proc_cmdline(pid)
    return b"-c" in args and any(b"recv_fds" in arg for arg in args)


def children(ppid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = proc_stat(int(entry.name))
            if stat is not None and stat[1] == ppid:
                out.append(int(entry.name))
    return out


def gone(pid: int) -> bool:
    """The process has exited: no such pid, a zombie (exited, not reaped by whoever
    adopted it), or the pid reused by something that is not a sync process."""
    stat = proc_stat(pid)
    return stat is None or stat[0] in ("Z", "X") or not is_syncer(pid)


class Server:
    """One `auction-engine serve` process; its JSON log lines go to a file (a pipe left
    unread would block the service once full)."""

    def __init__(self, data_dir: Path, config: Path, log: Path) -> None:
        self.log = log
        env = {k: v for k, v in os.environ.items() if not k.startswith("AUCTION_ENGINE_")}
        with open(log, "wb") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "auction_engine.cli", "serve", "--config", str(config), "--host", "127.0.0.1",
                 "--port", "0", "--data-dir", str(data_dir)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr, env=env,
                start_new_session=True)  # a Ctrl-C of the test run is not a graceful stop of the service
        self.pid = self.process.pid
        self.port = 0
        self.recovered: dict[str, Any] = {}
        self.sync_pid = 0

    def lines(self) -> list[dict[str, Any]]:
        out = []
        for raw in self.log.read_bytes().splitlines():
            try:
                line = json.loads(raw)
            except ValueError:
                continue  # a torn last line, or a traceback
            if isinstance(line, dict):
                out.append(line)
        return out

    def tail(self) -> str:
        return self.log.read_bytes()[-4000:].decode(errors="replace")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def room_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/v1/auctions/{AUCTION}"

    async def started(self) -> None:
        """Wait for the `serving` line (its port), /readyz 200 and the sync process."""
        with trio.fail_after(STARTUP_TIMEOUT):
            while True:
                lines = self.lines()
                serving = [line for line in lines if line.get("msg") == "serving"]
                if serving:
                    self.port = serving[0]["port"]
                    self.recovered = next(line for line in lines if line.get("msg") == "journal recovered")
                    break
                if self.process.poll() is not None:
                    raise AssertionError(f"serve exited with {self.process.returncode}:\n{self.tail()}")
                await trio.sleep(0.05)
            async with httpx.AsyncClient(timeout=10) as http:
                while True:
                    try:
                        if (await http.get(f"{self.base}/readyz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    await trio.sleep(0.05)
            while True:  # the writer starts its sync process as the journal opens
                syncers = [pid for pid in children(self.pid) if is_syncer(pid)]
                if syncers:
                    break
                await trio.sleep(0.02)
        assert len(syncers) == 1, syncers
        self.sync_pid = syncers[0]
        stat = proc_stat(self.sync_pid)
        assert stat is not None and stat[2] == self.sync_pid, "the sync process is not in its own session"

    async def exited(self, timeout: float) -> int:
        with trio.fail_after(timeout):
            while self.process.poll() is None:
                await trio.sleep(0.02)
        return self.process.returncode

    async def kill(self) -> None:
        """SIGKILL the service; its sync process must then end by itself."""
        sync_pid = self.sync_pid
        assert not gone(sync_pid), "the sync process died before the service"
        os.kill(self.pid, signal.SIGKILL)
        assert await self.exited(30) == -signal.SIGKILL
        with trio.move_on_after(SYNC_EXIT_TIMEOUT):
            while not gone(sync_pid):
                await trio.sleep(0.02)
        assert gone(sync_pid), f"the sync process {sync_pid} outlived the killed service: {proc_stat(sync_pid)}"
        assert not children(self.pid)

    def ensure_dead(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


# --- bidders ---------------------------------------------------------------------------------------------------------


@dataclass
class Bidder:
    """One bidder: what it sent, every answer it got (with the run it came in), its bid in flight."""

    name: str
    token: str = ""
    sent: dict[str, int] = field(default_factory=dict)  # client_bid_id -> amount (minor units)
    answers: dict[str, list[tuple[int, dict[str, Any]]]] = field(default_factory=dict)
    in_flight: tuple[str, int] | None = None
    resent: list[str] = field(default_factory=list)  # ids resent after a reconnection
    standing: bool = False  # an accepted bid was acknowledged
    closes: list[tuple[int, int | None, str | None]] = field(default_factory=list)  # (run, code, reason)


FINAL = ("ack", "reject")
RETRYABLE = ("rate_limited", "journal_unavailable")  # not remembered: resend the same id


def dropped(exc: BaseException) -> bool:
    """Whether `exc` (a group, maybe nested) is only the connection going away."""
    if isinstance(exc, BaseExceptionGroup):
        return all(dropped(e) for e in exc.exceptions)
    return isinstance(exc, RoomClosed | ConnectionClosed | HandshakeError | OSError | trio.BrokenResourceError
                      | trio.ClosedResourceError)


class Load:
    """The bidders of one run of the service."""

    def __init__(self, bidders: list[Bidder], amounts: itertools.count[int], run: int, url: str) -> None:
        self.bidders, self.amounts, self.run, self.url = bidders, amounts, run, url
        self.stop = trio.Event()  # stop bidding (finish the bid in flight), keep the connection
        self.connected = 0
        self.idle = 0  # connections that stopped bidding

    async def session(self, bidder: Bidder) -> None:
        """Connect (a few tries), resend the bid in flight, bid until the connection drops;
        once `stop` is set, finish the bid in flight and wait for the service to close."""
        for attempt in range(20):
            welcomed = False
            try:
                async with Room.connect(self.url, bidder.token) as room:
                    welcomed = True
                    self.connected += 1
                    if bidder.in_flight is not None:
                        bidder.resent.append(bidder.in_flight[0])
                    await self._bid(bidder, room)
                    self.idle += 1
                    closed = await room.wait_closed()
                    bidder.closes.append((self.run, closed.code, closed.reason))
                return
            except BaseException as exc:
                if not dropped(exc):
                    raise
                if welcomed:  # the service went away under the connection
                    bidder.closes.append((self.run, _close_code(exc), None))
                    return
                if attempt == 19:
                    raise
                await trio.sleep(0.2)

    async def _bid(self, bidder: Bidder, room: Room) -> None:
        # once stopped, a bid refused for now (journal_unavailable) is still resent to its end
        while not self.stop.is_set() or bidder.in_flight is not None:
            if bidder.in_flight is None:
                n = next(self.amounts)
                cid = f"{bidder.name}-{len(bidder.sent)}"
                too_high = bidder.standing and len(bidder.sent) % TOO_HIGH_EVERY == 0
                amount = STARTING_PRICE if too_high else STARTING_PRICE - 1 - STEP * n
                bidder.in_flight = (cid, amount)
                bidder.sent[cid] = amount
            cid, amount = bidder.in_flight
            with trio.fail_after(BID_TIMEOUT):
                answer = await room.bid(LOT, money(amount), cid)
            bidder.answers.setdefault(cid, []).append((self.run, answer))
            assert answer["type"] in FINAL, answer
            if answer["type"] == "reject" and answer["code"] in RETRYABLE:
                await trio.sleep(0.05)
                continue
            bidder.in_flight = None
            if answer["type"] == "ack":
                bidder.standing = True

    async def run_until(self, action: Any, delay: float) -> None:
        """Start every session; `delay` s after all are connected, `action()`; wait for the sessions."""
        with trio.fail_after(STARTUP_TIMEOUT + delay + STOP_TIMEOUT + BID_TIMEOUT):
            async with trio.open_nursery() as nursery:
                for bidder in self.bidders:
                    nursery.start_soon(self.session, bidder)
                while self.connected < len(self.bidders):
                    await trio.sleep(0.01)
                await trio.sleep(delay)
                await action()


def _close_code(exc: BaseException) -> int | None:
    if isinstance(exc, BaseExceptionGroup):
        codes = [_close_code(e) for e in exc.exceptions]
        return next((c for c in codes if c is not None), None)
    if isinstance(exc, RoomClosed):
        return exc.code
    if isinstance(exc, ConnectionClosed) and exc.reason is not None:
        return exc.reason.code
    return None


# --- the test --------------------------------------------------------------------------------------------------------


def write_settings(path: Path) -> None:
    path.write_text(f"""\
host = "127.0.0.1"
durability = "fsync"
sync_in = "process"
checkpoint_every = 40
token_secret = "{TOKEN_SECRET}"
bid_rate = 10000.0
bid_burst = 100000
log_level = "info"

[[api_keys]]
name = "portal-crash"
role = "portal"
key = "{PORTAL_KEY}"
""")


def auction_body() -> dict[str, Any]:
    now = int(time.time() * 1_000_000)
    return {
        "auction_id": AUCTION, "title": "Serve crash suite", "currency": "MAD", "decimals": 2,
        "start": format_instant(now - 60_000_000), "end": format_instant(now + 3_600_000_000),
        "visibility": "rank_and_best", "rules": {"min_step": "0.01", "improve_on": "own"},
        "lots": [{"lot_id": LOT, "title": "Lot", "estimate": money(STARTING_PRICE),
                  "starting_price": money(STARTING_PRICE)}],
    }


@pytest.mark.trio
async def test_sigkill_of_the_service_under_bid_load_loses_nothing_acknowledged(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    note = f"(SERVE_CRASH_SEED={SEED}, logs in {tmp_path})"
    data_dir, config = tmp_path / "data", tmp_path / "settings.toml"
    write_settings(config)
    bidders = [Bidder(f"bidder{i}") for i in range(BIDDERS)]
    amounts = itertools.count()
    servers: list[Server] = []
    shown: dict[str, Any] = {}  # what the RPC showed after the last restart
    started = time.monotonic()
    try:
        for run in range(KILLS + 1):
            server = Server(data_dir, config, tmp_path / f"serve-{run}.log")
            servers.append(server)
            await server.started()
            if run == 0:
                async with RpcClient(server.base, PORTAL_KEY) as rpc:
                    await rpc.create_auction(auction_body())
                    tokens = (await rpc.admit(AUCTION, [b.name for b in bidders]))["tokens"]
                for bidder, token in zip(bidders, tokens, strict=True):
                    assert token["bidder_id"] == bidder.name
                    bidder.token = token["token"]  # the same tokens work across restarts (same secret)
            load = Load(bidders, amounts, run, server.room_url)
            if run < KILLS:
                await load.run_until(server.kill, rng.uniform(0.3, 1.5))
                codes = [code for b in bidders for r, code, _reason in b.closes if r == run]
                assert len(codes) == len(bidders) and set(codes) <= {1006, None}, (run, codes)  # dropped, not closed
                continue

            # the last run: bid a while, stop, check the RPC, stop gracefully
            async def stop_gracefully(load: Load = load, server: Server = server) -> None:
                load.stop.set()
                while load.idle < len(bidders):
                    await trio.sleep(0.01)
                acked = [int(m["amount"].replace(".", "")) for b in bidders for answers in b.answers.values()
                         for _run, m in answers if m["type"] == "ack"]
                best = money(min(acked))
                async with RpcClient(server.base, PORTAL_KEY) as rpc:
                    lot = (await rpc.get_auction(AUCTION))["lots"][0]
                    results = await rpc.results(AUCTION)
                assert lot["best_price"] == best, (lot, best)
                ranking = results["lots"][0]["ranking"]
                assert ranking and ranking[0]["rank"] == 1 and ranking[0]["price"] == best, (ranking[:2], best)
                prices = [int(r["price"].replace(".", "")) for r in ranking]
                assert prices == sorted(prices), ranking
                shown.update(lot=lot, ranking=ranking)
                server.process.send_signal(signal.SIGTERM)
                assert await server.exited(STOP_TIMEOUT) == 0, server.tail()

            await load.run_until(stop_gracefully, rng.uniform(0.3, 1.0))
        final = servers[-1]
        assert gone(final.sync_pid), "the sync process outlived the graceful stop"
        assert final.lines()[-1]["msg"] == "stopped; journal flushed", final.tail()
        assert all(closes[-1][:3] == (KILLS, 1001, "the service is shutting down")
                   for closes in (b.closes for b in bidders)), [b.closes[-1:] for b in bidders]
    finally:
        for server in servers:
            server.ensure_dead()
    elapsed = time.monotonic() - started
    for server in servers:  # the sync process, too, ends quietly when the service dies
        assert b"Traceback" not in server.log.read_bytes(), server.tail()

    # --- the journal against what every client was told -------------------------------------------------------------
    owner = {cid: b for b in bidders for cid in b.sent}
    recovered = [s.recovered["records"] for s in servers]
    hashes_at = set(recovered)
    hashes: dict[int, str] = {}
    verifier = Verifier()
    if 0 in hashes_at:
        hashes[0] = verifier.journaled.host.state_hash()
    journaled: dict[str, tuple[int, str, str, int, int]] = {}  # cid -> (gseq, outcome, code, amount, time)
    journal_dir = data_dir / "journal"
    for record, where in JournalReader(journal_dir).records():
        events = verifier.feed(record, where)
        if record.gseq in hashes_at:
            hashes[record.gseq] = verifier.journaled.host.state_hash()
        if record.command[0] != "PlaceBid":
            continue
        _name, bid_time, _aid, _lot, bidder_id, amount, cid = record.command
        sender = owner.get(cid)
        assert sender is not None and sender.name == bidder_id and sender.sent[cid] == amount, \
            f"the journal holds a bid never sent: {record.command} {note}"
        assert cid not in journaled, f"{cid} is journaled twice {note}"
        outcome = next(e for e in events if type(e).__name__ in ("BidAccepted", "BidRejected"))
        code = getattr(outcome, "code", "")
        journaled[cid] = (record.gseq, "ack" if code == "" else "reject", code, amount, bid_time)

    answered = 0
    for bidder in bidders:
        assert bidder.in_flight is None, f"{bidder.name} ended with a bid unanswered {note}"
        for cid, answers in bidder.answers.items():
            finals = [(run, m) for run, m in answers if not (m["type"] == "reject" and m["code"] in RETRYABLE)]
            assert len(finals) == 1, (cid, answers)
            run, message = finals[0]
            assert cid in journaled, f"{cid} was answered {message} but is not in the journal {note}"
            gseq, kind, code, amount, bid_time = journaled[cid]
            assert message["type"] == kind, (cid, message, journaled[cid])
            if kind == "ack":
                assert message["amount"] == money(amount) and message["time"] == format_instant(bid_time), \
                    (cid, message, journaled[cid])
            else:
                assert message["code"] == code == "insufficient_step", (cid, message, journaled[cid])
                assert bidder.sent[cid] == STARTING_PRICE
            # an answer from the journal exactly when the bid was there when that run started
            assert message["duplicate"] is (gseq <= recovered[run]), (cid, run, gseq, recovered, message)
            answered += 1
    assert answered == len(journaled), "the journal holds a bid no client was told about"

    # each start recovered exactly the state a fresh replay of its journal prefix gives
    for server in servers:
        records = server.recovered["records"]
        assert server.recovered["summary"].split("; state ")[1][:16] == hashes[records][:16], server.recovered
    assert verify(journal_dir).ok

    acks = sum(1 for v in journaled.values() if v[1] == "ack")
    assert (shown["lot"]["bids"], shown["lot"]["rejected_bids"]) == (acks, len(journaled) - acks), shown["lot"]
    standing = {owner[cid].name for cid, v in journaled.items() if v[1] == "ack"}
    assert len(shown["ranking"]) == shown["lot"]["active_bidders"] == len(standing), shown
    resent = [cid for b in bidders for cid in b.resent]
    from_journal = sum(1 for cid in set(resent) for _run, m in owner[cid].answers[cid] if m.get("duplicate"))
    torn = sum(1 for s in servers if "torn tail" in s.recovered["summary"])
    from_checkpoints = sum(1 for s in servers if s.recovered.get("checkpoint") is not None)
    assert not any(s.recovered.get("skipped") for s in servers), [s.recovered for s in servers]
    assert acks > 10 * (KILLS + 1), f"too little load to mean anything: {acks} accepted bids {note}"
    assert len(resent) == BIDDERS * KILLS  # every kill caught every bidder with a bid in flight
    print(f"{KILLS} kills in {elapsed:.1f} s, {len(journaled)} bids journaled ({acks} accepted), "
          f"{len(resent)} resent after a restart ({from_journal} answered from the journal), {torn} torn tails, "
          f"{from_checkpoints} starts from a checkpoint; "
          f"seed {SEED}")
