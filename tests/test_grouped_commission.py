"""The commission of a collective: designated by the coordinator once constituted, every
member's representative once; replaced by a later designation; journaled, recovered,
checkpointed and verified; a collective without one hashes as before it existed."""

from __future__ import annotations

from pathlib import Path

import msgpack
import pytest
from grouped_example import CID, CONVENTION, DEADLINE, MEMBERS, T0, S, commands, preparation
from journals import write
from test_grouped_kind import refused, run

from auction_engine.journal import recover
from auction_engine.journal.format import decode_command, encode_command
from grouped_purchases import (
    AcceptConvention,
    Collectives,
    CommissionDesignated,
    CreateCollective,
    DesignateCommission,
)
from grouped_purchases.state import Collective
from replay import verify

PANEL = (("m1", "Amina Alaoui"), ("m2", "Youssef Bennani"), ("m3", "Salma Chraibi"))


def designate(now: int, pairs: tuple[tuple[str, str], ...] = PANEL, actor: str = "coord") -> DesignateCommission:
    return DesignateCommission(now, CID, actor, pairs)


def test_the_coordinator_designates_every_members_representative() -> None:
    kind = run(preparation()[:-3])
    shuffled = (PANEL[2], PANEL[0], PANEL[1])  # stored in the collective's member order
    assert kind.handle(designate(T0 + 9 * S, shuffled)) == [CommissionDesignated(T0 + 9 * S, CID, PANEL)]
    assert kind.collectives[CID].commission == PANEL
    replaced = (("m1", "Amina Alaoui"), ("m2", "Karim Daoudi"), ("m3", "Salma Chraibi"))
    kind.handle(designate(T0 + 10 * S, replaced))
    assert kind.collectives[CID].commission == replaced


BAD = [
    (designate(T0 + 9 * S, actor="m1"), "not_coordinator"),
    (designate(T0 + 9 * S, PANEL[:2]), "commission_incomplete"),
    (designate(T0 + 9 * S, (*PANEL, ("intruder", "X"))), "not_member"),
    (designate(T0 + 9 * S, (*PANEL, ("m1", "Again"))), "invalid_command"),
    (designate(T0 + 9 * S, (("m1", ""), PANEL[1], PANEL[2])), "invalid_command"),
    (designate(T0 + 9 * S, (("m1", "x" * 201), PANEL[1], PANEL[2])), "invalid_command"),
    (designate(T0 + 9 * S, ()), "commission_incomplete"),
    (DesignateCommission(T0 + 9 * S, CID, "coord", "m1"), "invalid_command"),  # type: ignore[arg-type]
    (DesignateCommission(T0 + 9 * S, CID, "coord", (("m1",),)), "invalid_command"),
    (DesignateCommission(T0 + 9 * S, "G-9", "coord", PANEL), "unknown_collective"),
]


@pytest.mark.parametrize(("command", "code"), BAD)
def test_bad_designations_are_refused_with_nothing_changed(command: object, code: str) -> None:
    refused(run(preparation()[:-3]), command, code)


def test_not_before_the_collective_is_constituted() -> None:
    kind = run([CreateCollective(T0, CID, "coord", MEMBERS, CONVENTION, DEADLINE),
                AcceptConvention(T0 + S, CID, "m1", CONVENTION)])
    refused(kind, designate(T0 + 2 * S), "not_constituted")


def test_journaled_recovered_checkpointed_and_verified(tmp_path: Path) -> None:
    cmds = [*preparation()[:-1], designate(DEADLINE + 2 * S), preparation()[-1]]
    journaled = write(tmp_path / "j", cmds)  # type: ignore[arg-type]
    recovered, report = recover(tmp_path / "j")
    assert recovered.host.state_hash() == journaled.host.state_hash() == report.state_hash
    assert recovered.host.kind(Collectives).collectives[CID].commission == PANEL
    checked = verify(tmp_path / "j")
    assert checked.ok and checked.state_hash == journaled.host.state_hash(), checked.problem
    kind = journaled.host.kind(Collectives)
    loaded = Collectives.load_state(msgpack.unpackb(msgpack.packb(kind.dump_state())))
    assert loaded.state_hash() == kind.state_hash() and loaded.collectives[CID].commission == PANEL
    assert decode_command(encode_command(designate(T0 + 9 * S))) == designate(T0 + 9 * S)  # type: ignore[arg-type]


def test_a_collective_without_a_commission_keeps_its_former_plain_form() -> None:
    """Journals and checkpoints from before the commission existed keep their state hash."""
    c = run(commands()).collectives[CID]
    plain = c.to_plain()
    assert len(plain) == 14 and Collective.from_plain(plain).commission == ()
    c.commission = PANEL
    assert len(c.to_plain()) == 15 and Collective.from_plain(c.to_plain()).commission == PANEL
