"""The tender kind against a trivially correct model of its lifecycle (Hypothesis state
machine): every rule applies one command to both; the statuses, deposits, deadlines, the
opening an amendment moved, the deposits to confirm and the outcomes must agree, and the
award must be the naive model's best offer (with the national preference for foreign bidders).
Beside it a draft (D1) is saved, replaced and discarded: no deadline, acts refused."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from factories import START, S
from hypothesis import note, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from tender_factories import DAY, MEMBERS, OPENING, deposit, publish, share, simple, spec
from test_tender_rules import naive_best, naive_preference

from auction_engine.host import Host
from auction_engine.kind import Tick
from tenders import CloseAdmission, DecideAdmission, DiscardDraft, DraftTender, Tenders, WithdrawOffer
from tenders.evaluation import Offer
from tenders.messages import ConfirmOffer, PublishAmendment, TenderLotAwarded, TenderLotUnsuccessful, TenderRefused

BIDDERS = ("acme", "beta", "gamma")
VALIDITY = 75 * DAY
ESTIMATE = 1_000_000_00  # lot L1's (L2 gets no offer: always no_offers)


class Model:
    """The lifecycle as the rules say it, with plain values."""

    def __init__(self) -> None:
        self.status = "published"
        self.deposits: dict[str, tuple[int, int]] = {}  # bidder -> (amount, order)
        self.shares: set[str] = set()
        self.decisions: dict[str, tuple[bool, bool]] = {}  # bidder -> (admitted, established in Morocco)
        self.outcome: dict[str, Any] = {}
        self.opening = OPENING  # a late amendment moves it so that 7 days remain
        self.unconfirmed: set[str] = set()  # deposits made before an amendment, not confirmed since
        self.amendments = 0
        self.draft: str | None = None  # the buyer of draft D1, while there is one

    def deadline(self) -> int | None:
        if self.status == "published":
            return self.opening
        return self.opening + VALIDITY if self.status in ("opening", "admission") else None

    def advance(self, now: int) -> None:
        if self.status == "published" and now >= self.opening:
            self.status = "opening"
            for bidder in self.unconfirmed:  # set aside: never opened
                del self.deposits[bidder]
            self.unconfirmed.clear()
            if not self.deposits:
                self.status, self.outcome = "decided", {"L1": "no_offers", "L2": "no_offers"}
        if self.status in ("opening", "admission") and now >= self.opening + VALIDITY:
            self.status, self.outcome = "decided", {"L1": "offers_expired", "L2": "offers_expired"}

    def award(self) -> dict[str, Any]:
        admitted = {b: a for b, (a, _) in self.deposits.items() if self.decisions[b][0]}
        if not admitted:
            return {"L1": "none_admitted", "L2": "no_offers"}
        p = (Fraction(ESTIMATE) + Fraction(sum(admitted.values()), len(admitted))) / 2
        order = {b: o for b, (_, o) in self.deposits.items()}
        offers = [Offer(b, a, not self.decisions[b][1], order[b]) for b, a in admitted.items()]
        ranked = naive_preference(offers, p, Fraction(15, 100))  # foreign bidders: art. 18
        best = naive_best(ranked, p, order)
        assert best is not None
        return {"L1": (best, admitted[best]), "L2": "no_offers"}


class TenderMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.host = Host()
        self.kind = self.host.kind(Tenders)
        self.model = Model()
        self.now = START
        self.host.handle(publish(self.now))

    def send(self, command: Any) -> list[Any]:
        self.model.advance(command.now)
        events = self.host.handle(command)
        note(f"{type(command).__name__} -> {[type(e).__name__ + ':' + getattr(e, 'code', '') for e in events]}")
        for e in events:
            if type(e) is TenderLotAwarded:
                assert self.model.outcome.get(e.lot_id) == (e.bidder_id, e.amount)
            elif type(e) is TenderLotUnsuccessful:
                assert self.model.outcome.get(e.lot_id) == e.reason
        return [e for e in events if type(e) is TenderRefused]

    @rule(seconds=st.sampled_from([1, 3600, 86_400, 3 * 86_400, 5 * 86_400, 40 * 86_400]))
    def wait(self, seconds: int) -> None:
        self.now += seconds * S
        self.send(Tick(self.now))

    @rule(bidder=st.sampled_from(BIDDERS), amount=st.integers(1, 2_000_000))
    def deposit(self, bidder: str, amount: int) -> None:
        self.model.advance(self.now)
        m = self.model
        expected = ("deposit_closed" if m.status != "published" else "already_deposited" if bidder in m.deposits
                    else None)
        refused = self.send(deposit(self.now, bidder, simple(f"{amount}.00")))
        assert [r.code for r in refused] == ([expected] if expected else [])
        if expected is None:
            # its place: after every standing deposit (withdrawn ones leave no gap to fill)
            m.deposits[bidder] = (amount * 100, max((o for _, o in m.deposits.values()), default=-1) + 1)

    @rule(bidder=st.sampled_from(BIDDERS))
    def withdraw(self, bidder: str) -> None:
        self.model.advance(self.now)
        m = self.model
        expected = ("deposit_closed" if m.status != "published" else "nothing_to_withdraw"
                    if bidder not in m.deposits else None)
        assert [r.code for r in self.send(WithdrawOffer(self.now, "T1", bidder))] == ([expected] if expected else [])
        if expected is None:
            del m.deposits[bidder]
            m.unconfirmed.discard(bidder)

    @rule()
    def amend(self) -> None:
        self.model.advance(self.now)
        m = self.model
        expected = "deposit_closed" if m.status != "published" else None
        m.amendments += 1
        refused = self.send(PublishAmendment(self.now, "T1", "buyer", f"A{m.amendments}", "a new clause"))
        assert [r.code for r in refused] == ([expected] if expected else [])
        if expected is None:
            m.opening = max(m.opening, self.now + 7 * DAY)
            m.unconfirmed |= set(m.deposits)

    @rule(bidder=st.sampled_from(BIDDERS))
    def confirm(self, bidder: str) -> None:
        self.model.advance(self.now)
        m = self.model
        expected = ("deposit_closed" if m.status != "published" else "nothing_to_confirm" if bidder not in m.deposits
                    else "already_confirmed" if bidder not in m.unconfirmed else None)
        assert [r.code for r in self.send(ConfirmOffer(self.now, "T1", bidder))] == ([expected] if expected else [])
        m.unconfirmed.discard(bidder)

    @rule(member=st.sampled_from(MEMBERS))
    def submit_share(self, member: str) -> None:
        self.model.advance(self.now)
        m = self.model
        expected = ("opening_not_started" if m.status == "published" else "not_opening" if m.status != "opening"
                    else "share_already_submitted" if member in m.shares else None)
        assert [r.code for r in self.send(share(self.now, member))] == ([expected] if expected else [])
        if expected is None:
            m.shares.add(member)
            if len(m.shares) == 3:
                m.status = "admission"

    @rule()
    def the_commission_meets(self) -> None:
        for member in MEMBERS[:3]:
            self.submit_share(member)

    @rule(bidder=st.sampled_from(BIDDERS), admitted=st.booleans(), established=st.booleans())
    def decide(self, bidder: str, admitted: bool, established: bool = True) -> None:
        self.model.advance(self.now)
        m = self.model
        expected = ("not_in_admission" if m.status != "admission" else "unknown_bidder" if bidder not in m.deposits
                    else None)
        refused = self.send(DecideAdmission(self.now, "T1", "m1", bidder, admitted, "" if admitted else "no",
                                            established))
        assert [r.code for r in refused] == ([expected] if expected else [])
        if expected is None:
            m.decisions[bidder] = (admitted, established)

    @rule(admitted=st.lists(st.tuples(st.booleans(), st.booleans()), min_size=len(BIDDERS), max_size=len(BIDDERS)))
    def decide_every_bidder(self, admitted: list[tuple[bool, bool]]) -> None:
        for bidder, (yes, established) in zip(BIDDERS, admitted, strict=True):
            if bidder in self.model.deposits:
                self.decide(bidder, yes, established)

    @rule()
    def close_admission(self) -> None:
        self.model.advance(self.now)
        m = self.model
        expected = ("not_in_admission" if m.status != "admission" else "undecided_bidders"
                    if set(m.deposits) - set(m.decisions) else None)
        if expected is None:
            m.status, m.outcome = "decided", m.award()
        assert [r.code for r in self.send(CloseAdmission(self.now, "T1", "m2"))] == ([expected] if expected else [])

    @rule(buyer=st.sampled_from(["buyer", "other"]), threshold=st.integers(1, 5))
    def save_draft(self, buyer: str, threshold: int) -> None:
        m = self.model
        expected = "not_the_buyer" if m.draft not in (None, buyer) else None
        command = DraftTender(self.now, "D1", spec(buyer_id=buyer, threshold=threshold, public_key=b"",
                                                   share_digests=()))
        assert [r.code for r in self.send(command)] == ([expected] if expected else [])
        m.draft = m.draft or buyer

    @rule(buyer=st.sampled_from(["buyer", "other"]))
    def discard_draft(self, buyer: str) -> None:
        m = self.model
        expected = "unknown_tender" if m.draft is None else "not_the_buyer" if m.draft != buyer else None
        assert [r.code for r in self.send(DiscardDraft(self.now, "D1", buyer))] == ([expected] if expected else [])
        m.draft = m.draft if expected else None

    @rule(bidder=st.sampled_from(BIDDERS))
    def deposit_on_the_draft(self, bidder: str) -> None:
        expected = "not_published" if self.model.draft else "unknown_tender"
        assert [r.code for r in self.send(deposit(self.now, bidder, simple("1.00"), tender_id="D1"))] == [expected]

    @precondition(lambda self: self.model.draft is not None)
    @rule()
    def publish_the_draft_as_another(self) -> None:
        refused = self.send(publish(self.now, "D1", buyer_id="intruder", opening_at=self.now + DAY))
        assert [r.code for r in refused] == ["not_the_buyer"]

    @invariant()
    def agrees(self) -> None:
        tender = self.kind.tenders["T1"]
        assert tender.status == self.model.status
        assert {b: tender.orders[b] for b in tender.deposits} == {b: o for b, (_, o) in self.model.deposits.items()}
        assert self.host.next_deadline() == self.model.deadline()
        assert set(tender.unconfirmed) == self.model.unconfirmed and tender.opening_at == self.model.opening
        assert "D1" not in self.kind.tenders  # nor its deadlines (next_deadline above)
        assert [d[0].buyer_id for d in self.kind.drafts.values()] == ([self.model.draft] if self.model.draft else [])


TestTenderMachine = TenderMachine.TestCase
TestTenderMachine.settings = settings(max_examples=60, stateful_step_count=60, deadline=None)
