"""Tamper: a changed byte in a tender's deposit or opening record is caught by `verify`.

Three forgers: one who flips a byte of a deposit record (its CRC then fails); one who
controls the whole journal and re-frames a deposit with another ciphertext (and its
hash), chaining every later record correctly; one who does the same with the k-th share,
or with an opened offer's plaintext in the opening's outcome. Re-execution catches the
last two: the kind refuses the forged command, or its outcome is not the journaled one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
from test_tenders import lifecycle

from auction_engine.cli import write_journal
from auction_engine.host import Host
from auction_engine.journal import Journaled, JournalReader, Submission
from auction_engine.journal.format import encode_command
from replay import verify
from tenders.messages import DepositOffer, EnvelopeOpened, SubmitShare
from tenders.sealing import digest

BETA_DEPOSIT = 2  # lifecycle()'s deposit of beta: no retry of it follows
THIRD_SHARE = 14  # the k-th share (3 of 5): its outcome opens every envelope


def forged_journal(directory: Path, index: int, command_of: Callable[[Any], Any] = lambda c: c,
                   outcome_of: Callable[[list[Any]], list[Any]] = lambda e: e) -> None:
    """lifecycle()'s journal, with record `index` framed from `command_of(command)` and
    `outcome_of(honest events)`, and every other record (before and after) honest."""
    journaled, frames = Journaled(), []
    for i, command in enumerate(lifecycle()):
        if i != index:
            frames += journaled.submit(command).frames
            continue
        honest = Host.load_state(journaled.host.dump_state()).handle(command)
        out = Submission([], [], journaled.gseq)
        packed = msgpack.packb(encode_command(command_of(command)))
        journaled.record(out, command.now, "T1", packed, outcome_of(honest))
        journaled.host.handle(command)  # the state goes on as if the record were honest
        frames += out.frames
    write_journal(directory, frames)


def other_ciphertext(command: DepositOffer) -> DepositOffer:
    part, ciphertext, _hash = command.envelopes[1]
    changed = ciphertext[:40] + bytes([ciphertext[40] ^ 1]) + ciphertext[41:]
    return command._replace(envelopes=(command.envelopes[0], (part, changed, digest(changed))))


def test_an_honest_journal_verifies(tmp_path: Path) -> None:
    forged_journal(tmp_path / "j", -1)
    assert verify(tmp_path / "j").ok


def test_a_flipped_byte_in_a_deposit_record_fails_its_crc(tmp_path: Path) -> None:
    forged_journal(tmp_path / "j", -1)
    segment = sorted((tmp_path / "j").glob("*.journal"))[0]
    records = [(record, where) for record, where in JournalReader(segment).records()]
    _record, where = next((r, w) for r, w in records if r.command[0] == "DepositOffer" and r.command[3] == "beta")
    data = bytearray(segment.read_bytes())
    data[where.offset + 200] ^= 0x40  # inside the payload: a ciphertext byte
    segment.write_bytes(bytes(data))
    checked = verify(tmp_path / "j")
    assert not checked.ok and checked.problem is not None and checked.problem.code == "bad_crc"
    assert checked.problem.location is not None and checked.problem.location.offset == where.offset


def test_a_deposit_reframed_with_another_ciphertext_is_caught_by_re_execution(tmp_path: Path) -> None:
    forged_journal(tmp_path / "j", BETA_DEPOSIT, command_of=other_ciphertext)
    checked = verify(tmp_path / "j")
    assert not checked.ok and checked.problem is not None and checked.problem.code == "divergence"
    assert checked.problem.gseq == BETA_DEPOSIT + 1  # the forged record itself (gseq 1 is the publication)


def test_a_deposit_whose_hash_does_not_match_is_caught(tmp_path: Path) -> None:
    def stale_hash(command: DepositOffer) -> DepositOffer:
        changed = other_ciphertext(command)
        part, ciphertext, _ = changed.envelopes[1]
        return changed._replace(envelopes=(changed.envelopes[0], (part, ciphertext, command.envelopes[1][2])))

    forged_journal(tmp_path / "j", BETA_DEPOSIT, command_of=stale_hash)
    checked = verify(tmp_path / "j")
    assert not checked.ok and checked.problem is not None and checked.problem.code == "divergence"


def test_a_changed_share_in_the_opening_record_is_caught(tmp_path: Path) -> None:
    def other_share(command: SubmitShare) -> SubmitShare:
        return command._replace(share=command.share[:5] + bytes([command.share[5] ^ 1]) + command.share[6:])

    forged_journal(tmp_path / "j", THIRD_SHARE, command_of=other_share)
    checked = verify(tmp_path / "j")
    assert not checked.ok and checked.problem is not None and checked.problem.code == "divergence"


def test_a_changed_plaintext_in_the_opening_outcome_is_caught(tmp_path: Path) -> None:
    def other_amount(events: list[Any]) -> list[Any]:
        out = []
        for e in events:
            if type(e) is EnvelopeOpened and e.bidder_id == "beta" and e.content:
                e = e._replace(content=e.content.replace(b"1050000.00", b"1040000.00"))
            out.append(e)
        assert out != events, "the forger found beta's amount in the opening"
        return out

    forged_journal(tmp_path / "j", THIRD_SHARE, outcome_of=other_amount)
    checked = verify(tmp_path / "j")
    assert not checked.ok and checked.problem is not None and checked.problem.code == "divergence"
