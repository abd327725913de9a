"""Execution of member contracts: deliveries (partial ones add up), receipts with
discrepancies, payments. Over-delivery and over-payment are refused unless the
coordinator explicitly allows them; each refusal raises `Refused` with its code."""

from __future__ import annotations

from typing import Any

from auction_engine.money import MAX_AMOUNT

from .checks import Refused, count, money, text
from .messages import DeliveryRecorded, PaymentRecorded, ReceiptRecorded, RecordDelivery, RecordPayment, RecordReceipt
from .state import Collective, Contract


def _contract(c: Collective, cmd: RecordDelivery | RecordReceipt | RecordPayment) -> Contract:
    contract = c.contracts.get(cmd.contract_id) if type(cmd.contract_id) is str else None
    if contract is None:
        raise Refused("unknown_contract", f"no contract {cmd.contract_id!r:.60}")
    if cmd.actor not in (contract.member, c.coordinator):
        raise Refused("not_member", "only the contract's member or the coordinator may do this")
    if not isinstance(cmd, RecordReceipt) and cmd.allow_over is not False and cmd.actor != c.coordinator:
        raise Refused("not_coordinator", "only the coordinator may allow going beyond the contract")
    return contract


def deliver(cmd: RecordDelivery, c: Collective) -> list[Any]:
    contract = _contract(c, cmd)
    line = contract.line(cmd.article)
    if line is None:
        raise Refused("unknown_article", f"no article {cmd.article!r:.60} in the contract")
    quantity = count(cmd.quantity, "quantity")
    net = contract.delivered.get(line.article, 0) - contract.rejected.get(line.article, 0)
    if net + quantity > line.quantity and cmd.allow_over is not True:
        # Rejected units do not count: the supplier replaces them.
        raise Refused("beyond_contract", f"{line.quantity - net} units remain to deliver")
    contract.delivered[line.article] = contract.delivered.get(line.article, 0) + quantity
    c.progress.deliver(contract, line.article, quantity)
    return [DeliveryRecorded(cmd.now, cmd.collective_id, cmd.contract_id, line.article, quantity)]


def receive(cmd: RecordReceipt, c: Collective) -> list[Any]:
    contract = _contract(c, cmd)
    line = contract.line(cmd.article)
    if line is None:
        raise Refused("unknown_article", f"no article {cmd.article!r:.60} in the contract")
    quantity = count(cmd.quantity, "quantity", 0)
    rejected = count(cmd.rejected, "rejected", 0)
    reason = text(cmd.reason, "reason")
    if quantity + rejected == 0:
        raise Refused("invalid_quantity", "a receipt inspects at least one unit")
    a = line.article
    waiting = contract.delivered.get(a, 0) - contract.received.get(a, 0) - contract.rejected.get(a, 0)
    if quantity + rejected > waiting:
        raise Refused("beyond_delivered", f"{waiting} delivered units await inspection")
    if rejected and not reason.strip():
        raise Refused("reason_required", "a discrepancy needs a reason")
    contract.received[a] = contract.received.get(a, 0) + quantity
    if rejected:
        contract.rejected[a] = contract.rejected.get(a, 0) + rejected
        contract.discrepancies.append((cmd.now, a, rejected, reason))
    c.progress.receive(contract, a, quantity, rejected)
    return [ReceiptRecorded(cmd.now, cmd.collective_id, cmd.contract_id, a, quantity, rejected, reason)]


def pay(cmd: RecordPayment, c: Collective) -> list[Any]:
    contract = _contract(c, cmd)
    amount = money(cmd.amount, "amount")
    if contract.paid + amount > contract.total and cmd.allow_over is not True:
        raise Refused("beyond_due", f"{contract.total - contract.paid} minor units remain due")
    if contract.paid + amount > MAX_AMOUNT:
        raise Refused("amount_too_large", f"payments exceed {MAX_AMOUNT} minor units")
    contract.paid += amount
    c.progress.pay(contract, amount)
    return [PaymentRecorded(cmd.now, cmd.collective_id, cmd.contract_id, amount)]
