"""A Hypothesis state machine drives a collective through all three phases with random
acts, many of them wrong, and checks the invariants after each: a refusal changes
nothing, a dump loads to the same hash, member contracts add up to each awarded lot,
execution stays within contracts and amounts due."""

from __future__ import annotations

from grouped_example import CID, DEADLINE, S, awards, preparation
from hypothesis import note, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from grouped_purchases import (
    CollectiveRefused,
    Collectives,
    LaunchProcurement,
    LotAwardRecorded,
    RecordDelivery,
    RecordLotAward,
    RecordLotPrices,
    RecordLotUnsuccessful,
    RecordPayment,
    RecordReceipt,
)

ACTORS = st.sampled_from(["coord", "coord", "coord", "m1", "x"])  # mostly the one who may act
LOTS = st.sampled_from(["L1", "L2", "L9"])
QUANTITY = st.one_of(st.integers(1, 30), st.integers(-1, 120))


class CollectiveMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.kind = Collectives()
        for command in preparation():
            self.kind.handle(command)
        self.now = DEADLINE + 20 * S  # after the example's awards
        self.procurements = ["A-G1"]
        self.awarded: dict[tuple[str, str], int] = {}  # (procurement, lot) -> total
        self.over_allowed = False

    @rule(data=st.data(), actor=ACTORS, lot=LOTS)
    def procure(self, data: st.DataObject, actor: str, lot: str) -> None:
        """One rule for the consultation's acts, so execution gets most steps."""
        act = data.draw(st.sampled_from(["total", "prices", "unsuccessful", "relaunch"]))
        if act == "total":
            self.award_total(actor, lot, data.draw(st.integers(0, 10**7)))
        elif act == "prices":
            self.award_prices(actor, lot, *data.draw(st.tuples(st.integers(0, 5_000), st.integers(0, 50_000),
                                                               st.integers(0, 10**6))))
        elif act == "unsuccessful":
            self.unsuccessful(actor, lot)
        else:
            self.relaunch(actor)

    @initialize(awarded=st.booleans())
    def start(self, awarded: bool) -> None:
        """Half the runs start with both lots awarded: execution gets most of the steps."""
        for command in awards() if awarded else []:
            self.act(command)

    def act(self, command: object) -> None:
        self.now += S
        before = self.kind.state_hash()
        events = self.kind.handle(command)
        note(f"{command} -> {[type(e).__name__ + ':' + getattr(e, 'code', '') for e in events]}")
        if all(type(e) is CollectiveRefused for e in events):
            assert self.kind.state_hash() == before
        for e in events:
            if type(e) is LotAwardRecorded:
                self.awarded[(e.procurement_id, e.lot)] = e.total

    @property
    def contracts(self) -> list[str]:
        return sorted(self.kind.collectives[CID].contracts) or ["none"]

    def party(self, data: st.DataObject, contract: str) -> str:
        """Mostly the contract's member; sometimes the coordinator, another member, a stranger."""
        member = contract.rsplit("/", 1)[-1]
        return data.draw(st.sampled_from([member, member, member, "coord", "m2", "x"]))

    def article(self, data: st.DataObject, contract: str) -> str:
        """Mostly one of the contract's articles."""
        k = self.kind.collectives[CID].contracts.get(contract)
        own = [line.article for line in k.lines] if k else []
        return data.draw(st.sampled_from([*own, *own, *own, "A4", "CH"]))

    def award_total(self, actor: str, lot: str, total: int) -> None:
        self.act(RecordLotAward(self.now, CID, actor, self.procurements[-1], lot, "s", total))

    def award_prices(self, actor: str, lot: str, a4: int, tn: int, ch: int) -> None:
        prices = (("A4", a4), ("TN", tn)) if lot == "L1" else (("CH", ch),)
        self.act(RecordLotPrices(self.now, CID, actor, self.procurements[-1], lot, "s", prices))

    def unsuccessful(self, actor: str, lot: str) -> None:
        self.act(RecordLotUnsuccessful(self.now, CID, actor, self.procurements[-1], lot))

    def relaunch(self, actor: str) -> None:
        pid = f"A-G{len(self.procurements) + 1}"
        self.act(LaunchProcurement(self.now, CID, actor, pid, 1))
        if pid in self.kind.collectives[CID].procurements:
            self.procurements.append(pid)

    @precondition(lambda self: self.kind.collectives[CID].contracts)
    @rule(data=st.data(), quantity=QUANTITY, allow=st.booleans())
    def deliver(self, data: st.DataObject, quantity: int, allow: bool) -> None:
        contract = data.draw(st.sampled_from(self.contracts))
        actor, article = self.party(data, contract), self.article(data, contract)
        self.act(RecordDelivery(self.now, CID, actor, contract, article, quantity, allow))
        self.over_allowed |= allow and actor == "coord"

    @precondition(lambda self: self.kind.collectives[CID].contracts)
    @rule(data=st.data(), quantity=st.one_of(st.integers(0, 10), QUANTITY), rejected=st.integers(0, 5),
          reason=st.sampled_from(["", "broken", "broken"]))
    def receive(self, data: st.DataObject, quantity: int, rejected: int, reason: str) -> None:
        contract = data.draw(st.sampled_from(self.contracts))
        actor, article = self.party(data, contract), self.article(data, contract)
        self.act(RecordReceipt(self.now, CID, actor, contract, article, quantity, rejected, reason))

    @precondition(lambda self: self.kind.collectives[CID].contracts)
    @rule(data=st.data(), amount=st.one_of(st.integers(1, 200_000), st.integers(-1, 2_000_000)), allow=st.booleans())
    def pay(self, data: st.DataObject, amount: int, allow: bool) -> None:
        contract = data.draw(st.sampled_from(self.contracts))
        actor = self.party(data, contract)
        self.act(RecordPayment(self.now, CID, actor, contract, amount, allow))
        self.over_allowed |= allow and actor == "coord"

    @invariant()
    def contracts_add_up_to_each_awarded_lot(self) -> None:
        c = self.kind.collectives[CID]
        for (pid, lot), total in self.awarded.items():
            assert sum(k.total for k in c.contracts.values() if k.procurement_id == pid and k.lot == lot) == total

    @invariant()
    def execution_stays_within_contracts(self) -> None:
        for k in self.kind.collectives[CID].contracts.values():
            for line in k.lines:
                a = line.article
                assert k.received.get(a, 0) + k.rejected.get(a, 0) <= k.delivered.get(a, 0)
                if not self.over_allowed:
                    assert k.delivered.get(a, 0) - k.rejected.get(a, 0) <= line.quantity
            assert self.over_allowed or k.paid <= k.total

    @invariant()
    def a_dump_loads_to_the_same_hash(self) -> None:
        assert Collectives.load_state(self.kind.dump_state()).state_hash() == self.kind.state_hash()


CollectiveMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
TestCollective = CollectiveMachine.TestCase
