"""The tender RPC's error codes: every `TenderRefused` code, with its HTTP status and meaning.

404: something named does not exist; 403: the caller is not who may do this (a
commission token of a non-member); 422: the request is malformed; 409: it conflicts with
the tender's state. Codes shared with the auctions keep their status.
"""

from __future__ import annotations

_NOT_FOUND = {
    "unknown_tender": "no tender with this id",
    "unknown_question": "no question with this id in the tender",
    "unknown_bidder": "no opened deposit of this bidder in the tender",
}
_FORBIDDEN = {
    "not_a_member": "the subject is not a member of the tender's commission",
    "not_the_buyer": "the caller does not act for the tender's buyer",
}
_MALFORMED = {
    "malformed": "a field is not of its form (e.g. an id with characters a tender id may not hold)",
    "opening_in_past": "the opening (deposit deadline) is not in the future",
    "invalid_lots": "the lots are empty, too many, repeated, or an estimate is out of range",
    "invalid_public_key": "the public key is not 32 bytes",
    "invalid_commission": "members and share digests do not match, or the threshold is not 1..members",
    "invalid_currency": "not an ISO 4217 code, or (for a rate) the tender's own currency",
    "invalid_parts": "the parts must include `financial`, each once",
    "invalid_validity": "the offers' validity is out of range",
    "invalid_percent": "a percentage is not a decimal from 0 to 100",
    "invalid_delays": "answer_days must be at most ask_days",
    "malformed_envelopes": "the envelopes are not exactly one per part of the tender, or one is empty or too large",
    "hash_mismatch": "an envelope's sha256 is not the SHA-256 of its ciphertext",
    "invalid_rate": "the rate is not a positive decimal with at most 6 decimals",
    "bad_share": "the share is not the one whose digest was published for this member",
    "reason_required": "a rejection (or a cancellation) needs a reason",
    "invalid_extension": "the days are out of range, or answer_by is not between now and the validity's end",
}
_CONFLICT = {
    "tender_exists": "a tender with this id exists with another specification",
    "deposit_closed": "the deposit deadline (opening_at, exclusive) has passed",
    "tender_cancelled": "the tender is cancelled",
    "already_deposited": "the bidder's offer stands: withdraw it first",
    "nothing_to_withdraw": "the bidder has no standing offer",
    "already_decided": "the tender is decided or cancelled",
    "opening_not_started": "shares are taken only after the deposit deadline",
    "not_opening": "the tender is not waiting for shares (already opened, decided or cancelled)",
    "share_already_submitted": "this member's share is already in",
    "not_in_admission": "the tender is not in its admission stage",
    "undecided_bidders": "some opened bidder has no admission decision yet",
    "already_downloaded": "the bidder's download is already registered",
    "not_downloaded": "only a bidder that registered a download may ask",
    "too_late_to_ask": "questions are closed (ask_until has passed)",
    "question_exists": "a question with this id exists",
    "too_late_to_answer": "answers are closed (answer_until has passed)",
    "already_answered": "already answered",
    "no_offers_to_extend": "no offers stand to extend (before the opening, or decided)",
    "extension_pending": "an extension request is already open",
    "no_extension_requested": "no extension request is open",
    "no_standing_offer": "the bidder has no standing offer to extend",
    "no_justification_asked": "the lot waits for no justification",
    "not_flagged": "the bidder's offer for the lot is not flagged (or already decided)",
    "already_justified": "the bidder has already justified its offer",
    "admission_open": "the tender's admission is not closed yet (or the tender is cancelled)",
    "no_admitted_bidders": "the tender admitted no bidder",
    "amendment_exists": "an amendment with this id exists",
    "nothing_to_confirm": "the bidder has no standing deposit to confirm",
    "already_confirmed": "the deposit is confirmed, or was made after every amendment: nothing to confirm",
    "not_opened": "the opening minutes exist once the tender is opened",
    "not_evaluated": "the evaluation minutes exist once the admission is closed (lots evaluated)",
    "client_id_reused": "this client_id already named another act of the bidder (a deposit sent to withdraw, or "
                        "the reverse)",
    "not_published": "the tender is its buyer's draft: publish it first",
    "already_published": "the tender is published: it has no draft any more",
}
ERROR_CODES: dict[str, tuple[int, str]] = {
    **{code: (404, why) for code, why in _NOT_FOUND.items()},
    **{code: (403, why) for code, why in _FORBIDDEN.items()},
    **{code: (422, why) for code, why in _MALFORMED.items()},
    **{code: (409, why) for code, why in _CONFLICT.items()},
}
