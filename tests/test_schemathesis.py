"""schemathesis (`st run`, every check, a fixed seed) against the generated document of a
real service on a loopback port; it must report no failure and no error.

Each operation is called with a key of a role it allows, spread over all three roles;
the document's links, and the example auction's ids for half the path parameters, give
calls real auction and bidder ids. `make test` runs a
small budget; `make test-slow` (SCHEMATHESIS_MAX_EXAMPLES) a large one, plus one pass per
role with that role's key on every operation (so each role's 403s are fuzzed too).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import trio
from served import KEYS, TOKEN_SECRET, served

from gateway import collective_models, models, tender_models
from gateway.auth import TokenIssuer

MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "10"))
SLOW = MAX_EXAMPLES > 10
SEED = 20261203
ST = Path(sys.executable).with_name("st")

# Who calls what in the mixed pass: an allowed role per operation, every role used.
BY_ROLE = {"buyer": ["suspend", "resume", "observer_token", "events", "issue_member_token", "generate_schedule"],
           "auditor": ["list_auctions", "get_auction", "results", "journal_export", "list_contracts",
                       "consolidation"]}
# Creating needs rules across fields (end after start, a close in the future...) that a
# schema cannot state, so schema-valid bodies are often refused: 422 is a right answer
# there (the request body's example is accepted; tests/test_openapi.py checks the rules).
CREATE_ACCEPTS = ["2xx", "401", "403", "404", "409", "422"]
# Tender acts whose rules across fields or with the state answer 422 to schema-valid bodies
# (the kind's codes: opening_in_past, hash_mismatch, bad_share, reason_required...; a draft
# of the example tender, published by then, answers 409 already_published).
TENDER_RULES = ["publish_tender", "deposit_offer", "submit_share", "decide_admission", "decide_justification",
                "request_extension", "record_rate", "cancel_tender", "save_draft",
                "get_draft", "discard_draft"]
# The case-token operations, called with tokens of the request body's example tender.
TENDER_TOKENS = {"bidder": ["register_download", "deposit_offer", "withdraw_offer", "ask_question", "justify_offer",
                            "answer_extension", "confirm_offer"],
                 "commission": ["submit_share", "decide_admission", "close_admission", "decide_justification"]}
# Collective acts with rules across fields or with the state: a needs deadline later than
# now, a launch's auction rules, a receipt inspecting at least one unit with a reason for
# rejected ones.
COLLECTIVE_RULES = ["create_collective", "launch", "record_receipt"]
# A member's own acts take a member token: one of the example collective's members.
MEMBER_OPERATIONS = ["accept_convention", "declare_need", "withdraw_need", "confirm_needs"]


# Half the path ids are those of the request body's example auction (created by the
# examples phase, which runs first): generated ids alone almost never name an auction.
REAL_IDS = [
    "[dictionaries.auctions]", f'values = ["{models.EXAMPLE_AUCTION["auction_id"]}"]',
    "[dictionaries.collectives]", f'values = ["{collective_models.EXAMPLE_COLLECTIVE["collective_id"]}"]',
    "[dictionaries.bidders]", f'values = {json.dumps(models.EXAMPLE_AUCTION["bidders"])}',
    "[dictionaries.tenders]", f'values = ["{tender_models.EXAMPLE_TENDER["tender_id"]}"]',
    "[parameters]", '"path.auction_id" = { dictionary = "auctions", probability = 0.5 }',
    '"path.tender_id" = { dictionary = "tenders", probability = 0.5 }',
    '"path.bidder_id" = { dictionary = "bidders", probability = 0.5 }',
    '"path.collective_id" = { dictionary = "collectives", probability = 0.5 }', ""]


def config(default_role: str, mixed: bool) -> str:
    lines = [f'headers = {{ Authorization = "Bearer {KEYS[default_role]}" }}', "", *REAL_IDS]
    if mixed:
        for role, operations in BY_ROLE.items():
            lines += ["[[operations]]", f"include-operation-id = {operations!r}".replace("'", '"'),
                      f'headers = {{ Authorization = "Bearer {KEYS[role]}" }}', ""]
    # one section per operation: schemathesis applies the first that matches
    rules = ("create_auction", *TENDER_RULES, *COLLECTIVE_RULES)
    settings: dict[str, list[str]] = {op: [] for op in rules}
    if mixed:
        issuer = TokenIssuer(TOKEN_SECRET, 3600)
        tender = tender_models.EXAMPLE_TENDER
        for role, operations in TENDER_TOKENS.items():
            subject = "acme" if role == "bidder" else tender["members"][0]
            token = issuer.issue_case(tender["tender_id"], subject, role)[0]
            for operation in operations:
                settings.setdefault(operation, []).append(f'headers = {{ Authorization = "Bearer {token}" }}')
        collective = collective_models.EXAMPLE_COLLECTIVE
        member = issuer.issue_case(collective["collective_id"], collective["members"][0], "member")[0]
        for operation in MEMBER_OPERATIONS:
            settings.setdefault(operation, []).append(f'headers = {{ Authorization = "Bearer {member}" }}')
    for operation, extra in settings.items():
        if operation in rules:
            extra.append(f"checks.positive_data_acceptance.expected-statuses = {CREATE_ACCEPTS!r}".replace("'", '"'))
        lines += ["[[operations]]", f'include-operation-id = "{operation}"', *extra, ""]
    return "\n".join(lines) + "\n"


PASSES = [("portal", True)] + ([(role, False) for role in KEYS] if SLOW else [])


@pytest.mark.trio
@pytest.mark.parametrize(("role", "mixed"), PASSES, ids=[f"{r}{'-mixed' if m else ''}" for r, m in PASSES])
async def test_schemathesis_finds_nothing(tmp_path: Path, role: str, mixed: bool) -> None:
    toml = tmp_path / "schemathesis.toml"
    toml.write_text(config(role, mixed))
    # A short long-poll bound: the document states it, so generated `wait`s stay short.
    async with served(tmp_path / "data", feed_wait_max_s=0.5) as srv:
        command = [str(ST), "--config-file", str(toml), "--no-color", "run", f"{srv.base}/api/v1/openapi.json",
                   "--checks", "all", "--seed", str(SEED), "--max-examples", str(MAX_EXAMPLES),
                   "--generation-database", "none", "--request-timeout", "10", "--workers", "1"]
        done = await trio.run_process(command, capture_stdout=True, stderr=sys.stderr, check=False,
                                      cwd=str(tmp_path))
    out = done.stdout.decode(errors="replace")
    print(out[-2500:]) if os.environ.get("ST_SHOW") else None
    assert done.returncode == 0, out[-6000:]  # st exits non-zero on any failure or error
    cases = next(line for line in out.splitlines() if " generated, " in line)
    print(f"schemathesis ({role}{', mixed' if mixed else ''}): {cases.strip()}")
    assert "fail" not in cases and "error" not in cases, out[-3000:]
