"""Sealed electronic tenders (appel d'offres ouvert) as a procedure kind of the platform.

`Tenders` is the kind (sans-IO): publication, sealed deposit, k-of-n opening, admission,
financial evaluation and award per lot. `sealing` holds the bidder's and the shell's
cryptography; `evaluation` the decree's rules; docs/tenders.md describes it all.
"""

from .kind import Tenders
from .messages import (
    AnswerExtension,
    AnswerQuestion,
    AskQuestion,
    CancelTender,
    CloseAdmission,
    DecideAdmission,
    DecideJustification,
    DepositOffer,
    DiscardDraft,
    DraftTender,
    JustifyOffer,
    PublishTender,
    RecordRate,
    RegisterDownload,
    RequestExtension,
    SubmitShare,
    TenderSpec,
    WithdrawOffer,
)

__all__ = ["AnswerExtension", "AnswerQuestion", "AskQuestion", "CancelTender", "CloseAdmission", "DecideAdmission",
           "DecideJustification", "DepositOffer", "DiscardDraft", "DraftTender", "JustifyOffer", "PublishTender",
           "RecordRate", "RegisterDownload", "RequestExtension", "SubmitShare", "TenderSpec", "Tenders",
           "WithdrawOffer"]
