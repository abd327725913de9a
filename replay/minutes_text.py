"""The words of the tender minutes (procès-verbaux), in French (the default) and English.

`text(lang)` returns a lookup: a label key, or a code the kind records (an unreadable
envelope's, an exclusion's, an unsuccessful lot's reason), to its wording; an unknown
code is shown as itself, so a new code never breaks the minutes.
"""

from __future__ import annotations

from collections.abc import Callable

LANGS = ("fr", "en")

_WORDS: dict[str, tuple[str, str]] = {
    # titles
    "opening_title": ("Procès-verbal de la séance d'ouverture des plis", "Minutes of the bid opening session"),
    "evaluation_title": ("Procès-verbal de l'évaluation des offres et de l'attribution",
                         "Minutes of the evaluation of the offers and the award"),
    "tender": ("Appel d'offres ouvert", "Open tender"),
    "footer": ("Établi à partir de l'état du dossier tel que le journal le reconstruit (auction-replay).",
               "Drawn up from the tender's state as its journal rebuilds it (auction-replay)."),
    # sections
    "s_object": ("Objet", "Subject"),
    "s_commission": ("Commission", "Commission"),
    "s_amendments": ("Avis rectificatifs", "Amendments"),
    "s_clarifications": ("Éclaircissements publiés", "Published clarifications"),
    "s_deposits": ("Plis déposés", "Deposited offers"),
    "s_amounts": ("Montants lus à l'ouverture", "Amounts read out"),
    "s_anomalies": ("Anomalies", "Anomalies"),
    "s_key": ("Clé de l'appel d'offres", "The tender's key"),
    "s_admission": ("Examen administratif et technique", "Administrative and technical examination"),
    "s_rates": ("Taux de change de référence", "Reference exchange rates"),
    "s_validity": ("Validité des offres", "Validity of the offers"),
    "s_lot": ("Lot", "Lot"),
    "s_cancelled": ("Annulation", "Cancellation"),
    # facts
    "buyer": ("Maître d'ouvrage", "Buyer"),
    "opening_at": ("Date limite de dépôt et séance d'ouverture", "Deposit deadline and opening session"),
    "first_opening": ("Date initialement fixée", "Date first set"),
    "opened_at": ("Plis ouverts le", "Offers opened at"),
    "not_opened": ("non ouverts", "not opened"),
    "currency": ("Monnaie", "Currency"),
    "lots": ("Lots (estimation)", "Lots (estimate)"),
    "status": ("État", "Status"),
    "members": ("Membres", "Members"),
    "threshold": ("Parts de clé requises", "Key shares required"),
    "present": ("Présent (a remis sa part)", "Present (submitted a share)"),
    "yes": ("oui", "yes"),
    "no": ("non", "no"),
    "member": ("Membre", "Member"),
    "id": ("Réf.", "Ref."),
    "date": ("Date", "Date"),
    "text": ("Texte", "Text"),
    "file_digest": ("Empreinte SHA-256 du fichier", "File SHA-256"),
    "opening_after": ("Ouverture ensuite fixée au", "Opening then set at"),
    "question": ("Question", "Question"),
    "answer": ("Réponse", "Answer"),
    "unanswered": ("Questions restées sans réponse", "Questions left unanswered"),
    "order": ("Ordre", "Order"),
    "bidder": ("Soumissionnaire", "Bidder"),
    "deposited_at": ("Déposé le", "Deposited at"),
    "envelopes": ("Enveloppes", "Envelopes"),
    "lot": ("Lot", "Lot"),
    "form_total": ("Montant de l'acte d'engagement", "Bid form total"),
    "what": ("Nature", "What"),
    "detail": ("Détail", "Detail"),
    "withdrawal": ("retrait", "withdrawal"),
    "set_aside": ("pli écarté sans ouverture", "offer set aside unopened"),
    "unreadable": ("enveloppe illisible", "unreadable envelope"),
    "no_anomaly": ("Aucune anomalie.", "No anomaly."),
    "no_deposit": ("Aucun pli n'a été déposé.", "No offer was deposited."),
    "public_key": ("Clé publique", "Public key"),
    "key_check": ("Clé reconstituée à partir des parts", "Key rebuilt from the shares"),
    "key_ok": ("conforme à la clé publique", "matches the public key"),
    "decision": ("Décision", "Decision"),
    "admitted": ("admis", "admitted"),
    "rejected": ("écarté", "rejected"),
    "reason": ("Motif", "Reason"),
    "decided_by": ("Décidé par", "Decided by"),
    "established": ("Établi au Maroc", "Established in Morocco"),
    "moroccan_share": ("Part marocaine du groupement", "Moroccan share of the groupement"),
    "rate": ("Taux", "Rate"),
    "validity_until": ("Offres valables jusqu'au", "Offers valid until"),
    "lapsed": ("Validité non prorogée", "Validity not extended"),
    "estimate": ("Estimation", "Estimate"),
    "bpde_total": ("Total du BPDE recalculé", "BPDE total recomputed"),
    "corrected": ("Rectifié", "Corrected"),
    "converted": ("Montant retenu", "Amount evaluated"),
    "excluded": ("Écartée", "Excluded"),
    "reference": ("Prix de référence P", "Reference price P"),
    "reference_exact": ("P = (estimation × n + Σ offres) / 2n", "P = (estimate × n + Σ offers) / 2n"),
    "flags": ("Offres anormalement basses ou excessives", "Abnormally low or excessive offers"),
    "thresholds": ("Seuils (bas / haut, % de P)", "Thresholds (low / high, % of P)"),
    "unset": ("non fixé", "unset"),
    "justification": ("Justification", "Justification"),
    "not_answered": ("non remise", "not given"),
    "preference": ("Préférence nationale", "National preference"),
    "case": ("cas", "case"),
    "ranked_at": ("classée à", "ranked at"),
    "none": ("aucune", "none"),
    "ranking": ("Classement", "Ranking"),
    "outcome": ("Résultat", "Outcome"),
    "awarded_to": ("attribué à {bidder} pour {amount}", "awarded to {bidder} at {amount}"),
    "unsuccessful": ("infructueux : {reason}", "unsuccessful: {reason}"),
    "pending": ("en cours", "pending"),
    "cancelled_reason": ("Appel d'offres annulé : {reason}", "Tender cancelled: {reason}"),
    # codes the kind records
    "undecryptable": ("ne se déchiffre pas", "does not decrypt"),
    "malformed_offer": ("offre financière mal formée", "malformed financial offer"),
    "not_confirmed": ("dépôt antérieur à un avis rectificatif, non confirmé",
                      "deposit predating an amendment, not confirmed"),
    "not_admitted": ("soumissionnaire non admis", "bidder not admitted"),
    "validity_not_extended": ("validité non prorogée", "validity not extended"),
    "justification_rejected": ("justification rejetée", "justification rejected"),
    "no_reference_rate": ("pas de taux de référence pour sa monnaie", "no reference rate for its currency"),
    "invalid_amount": ("montant hors limites", "amount out of bounds"),
    "missing": ("enveloppe financière absente", "no financial envelope"),
    "no_offers": ("aucune offre", "no offers"),
    "none_admitted": ("aucun soumissionnaire admis", "no bidder admitted"),
    "all_rejected": ("toutes les offres écartées", "every offer excluded"),
    "offers_expired": ("validité des offres expirée", "the offers' validity expired"),
    "no_justification": ("pas de justification", "no justification"),
    "abnormally_low": ("anormalement basse", "abnormally low"),
    "excessive": ("excessive", "excessive"),
    "accepted": ("acceptée", "accepted"),
    "published": ("publié", "published"),
    "opening": ("ouverture", "opening"),
    "admission": ("examen des dossiers", "admission"),
    "evaluation": ("évaluation", "evaluation"),
    "decided": ("jugé", "decided"),
    "cancelled": ("annulé", "cancelled"),
    "admin": ("dossier administratif", "administrative file"),
    "technical": ("offre technique", "technical offer"),
    "financial": ("offre financière", "financial offer"),
    "ok": ("lisible", "readable"),
}


def text(lang: str) -> Callable[[str], str]:
    """The wording of a key or code in `lang` ("fr" or "en"; ValueError otherwise)."""
    if lang not in LANGS:
        raise ValueError(f"minutes are in {' or '.join(LANGS)}, not {lang!r}")
    index = LANGS.index(lang)

    def word(key: str) -> str:
        entry = _WORDS.get(key)
        return key if entry is None else entry[index]

    return word
