"""A tender's exchanges outside the envelopes: clarifications and validity extensions.

Clarifications (art. 10): a bidder who downloaded the file may ask until `ask_days`
before the opening (inclusive), the buyer answers until `answer_days` before; the asker
is kept in the state for the record and never put in an event. Extensions (art. 16): the
buyer asks the bidders with a standing offer to extend its validity; at `answer_by` those
who did not accept lapse. Each handler returns one event (a refusal is a `TenderRefused`).
"""

from __future__ import annotations

from typing import Any

from .messages import (
    AnswerExtension,
    AnswerQuestion,
    AskQuestion,
    ExtensionAnswered,
    ExtensionClosed,
    ExtensionRequested,
    FileDownloaded,
    QuestionAnswered,
    QuestionAsked,
    RegisterDownload,
    RequestExtension,
    TenderRefused,
)
from .tender import CANCELLED, DAY, LIVE, MAX_VALIDITY_DAYS, PUBLISHED, Tender, is_id

MAX_TEXT = 5_000  # characters of a question or an answer


def refuse(command: Any, code: str) -> TenderRefused:
    actor = command[2] if len(command) > 2 and type(command[2]) is str else ""
    tender_id = command.tender_id if type(command.tender_id) is str else ""
    return TenderRefused(command.now, tender_id, actor, type(command).__name__, code)


def _text(value: object) -> bool:
    return type(value) is str and len(value.strip()) > 0 and len(value) <= MAX_TEXT


def register_download(cmd: RegisterDownload, tender: Tender) -> Any:
    if tender.status != PUBLISHED:
        return refuse(cmd, "tender_cancelled" if tender.status == CANCELLED else "deposit_closed")
    if not is_id(cmd.bidder_id):
        return refuse(cmd, "malformed")
    if cmd.bidder_id in tender.downloads:
        return refuse(cmd, "already_downloaded")
    tender.downloads[cmd.bidder_id] = None
    return FileDownloaded(cmd.now, cmd.tender_id, cmd.bidder_id)


def ask(cmd: AskQuestion, tender: Tender) -> Any:
    if tender.status != PUBLISHED:
        return refuse(cmd, "tender_cancelled" if tender.status == CANCELLED else "too_late_to_ask")
    if cmd.bidder_id not in tender.downloads:
        return refuse(cmd, "not_downloaded")
    if cmd.now > tender.opening_at - tender.spec.ask_days * DAY:
        return refuse(cmd, "too_late_to_ask")
    if not is_id(cmd.question_id) or not _text(cmd.text):
        return refuse(cmd, "malformed")
    if cmd.question_id in tender.questions:
        return refuse(cmd, "question_exists")
    tender.questions[cmd.question_id] = [cmd.bidder_id, cmd.text, ""]
    return QuestionAsked(cmd.now, cmd.tender_id, cmd.question_id, cmd.text)


def answer(cmd: AnswerQuestion, tender: Tender) -> Any:
    if cmd.buyer_id != tender.spec.buyer_id:
        return refuse(cmd, "not_the_buyer")
    if tender.status != PUBLISHED or cmd.now > tender.opening_at - tender.spec.answer_days * DAY:
        return refuse(cmd, "tender_cancelled" if tender.status == CANCELLED else "too_late_to_answer")
    question = tender.questions.get(cmd.question_id) if type(cmd.question_id) is str else None
    if question is None:
        return refuse(cmd, "unknown_question")
    if question[2]:
        return refuse(cmd, "already_answered")
    if not _text(cmd.text):
        return refuse(cmd, "malformed")
    question[2] = cmd.text
    return QuestionAnswered(cmd.now, cmd.tender_id, cmd.question_id, question[1], cmd.text)


def request_extension(cmd: RequestExtension, tender: Tender) -> Any:
    if cmd.buyer_id != tender.spec.buyer_id:
        return refuse(cmd, "not_the_buyer")
    if tender.status not in LIVE:
        return refuse(cmd, "no_offers_to_extend")
    if tender.extension:
        return refuse(cmd, "extension_pending")
    if (type(cmd.days) is not int or not 0 < cmd.days <= MAX_VALIDITY_DAYS or type(cmd.answer_by) is not int
            or not cmd.now < cmd.answer_by < tender.validity_until):
        return refuse(cmd, "invalid_extension")
    tender.extension = [cmd.days, cmd.answer_by, {}]
    return ExtensionRequested(cmd.now, cmd.tender_id, cmd.days, cmd.answer_by)


def answer_extension(cmd: AnswerExtension, tender: Tender) -> Any:
    if not tender.extension:
        return refuse(cmd, "no_extension_requested")
    if cmd.bidder_id not in tender.deposits or cmd.bidder_id in tender.lapsed:
        return refuse(cmd, "no_standing_offer")
    if cmd.bidder_id in tender.extension[2]:
        return refuse(cmd, "already_answered")
    if type(cmd.accepted) is not bool:
        return refuse(cmd, "malformed")
    tender.extension[2][cmd.bidder_id] = cmd.accepted
    return ExtensionAnswered(cmd.now, cmd.tender_id, cmd.bidder_id, cmd.accepted)


def close_extension(tender: Tender, tender_id: str, at: int) -> ExtensionClosed:
    """At `answer_by`: the validity is extended; who did not accept (or answer) lapses."""
    days, _, answers = tender.extension
    tender.extension = []
    tender.validity_until += days * DAY
    lapsed = tuple(b for b in sorted(tender.deposits) if not answers.get(b, False) and b not in tender.lapsed)
    tender.lapsed += lapsed
    return ExtensionClosed(at, tender_id, tender.validity_until, lapsed)
