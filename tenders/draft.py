"""A tender's draft: its buyer's private work before publication (no feed, no deadline).

A draft's spec is checked as at publication except what only publication fixes
(`spec_problem(..., draft=True)`). Saving again replaces it, discarding drops it, and
`PublishTender` under its id publishes the publication's own spec (it wins entirely),
which must name the draft's buyer (`not_the_buyer`). Other commands on a draft's id are
refused `not_published`. Drafts live beside the tenders, never among them.
"""

from __future__ import annotations

from typing import Any

from .dialogue import refuse
from .messages import DiscardDraft, DraftDiscarded, DraftSaved, DraftTender, PublishTender, TenderSpec, tuples
from .tender import Tender, is_id, spec_problem

Drafts = dict[str, list[Any]]  # tender id -> [spec, instant saved]


def save(cmd: DraftTender, drafts: Drafts, tenders: dict[str, Tender]) -> Any:
    if not is_id(cmd.tender_id):
        return refuse(cmd, "malformed")
    if cmd.tender_id in tenders:
        return refuse(cmd, "already_published")
    problem = spec_problem(cmd.spec, cmd.now, draft=True)
    if problem is not None:
        return refuse(cmd, problem)
    if (refusal := publishing(cmd, drafts)) is not None:
        return refusal
    drafts[cmd.tender_id] = [cmd.spec, cmd.now]
    return DraftSaved(cmd.now, cmd.tender_id, cmd.spec.buyer_id)


def publishing(cmd: PublishTender | DraftTender, drafts: Drafts) -> Any:
    """The refusal of a command replacing a draft of another buyer, else None."""
    draft = drafts.get(cmd.tender_id)
    return refuse(cmd, "not_the_buyer") if draft is not None and cmd.spec.buyer_id != draft[0].buyer_id else None


def discard(cmd: DiscardDraft, drafts: Drafts, tenders: dict[str, Tender]) -> Any:
    tid = cmd.tender_id if type(cmd.tender_id) is str else ""
    draft = drafts.get(tid)
    if draft is None:
        return refuse(cmd, "already_published" if tid in tenders else "unknown_tender")
    if cmd.buyer_id != draft[0].buyer_id:
        return refuse(cmd, "not_the_buyer")
    del drafts[cmd.tender_id]
    return DraftDiscarded(cmd.now, cmd.tender_id)


def canonical(drafts: Drafts) -> list[list[object]]:
    """Each draft's part of the state hash (and of dump: plain values)."""
    return [[tid, "draft", list(spec), at] for tid, (spec, at) in drafts.items()]


def load(data: Any) -> Drafts:
    return {tid: [TenderSpec(*tuples(spec)), at] for tid, marker, spec, at in data if marker == "draft"}
