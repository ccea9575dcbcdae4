"""Money rules: integer cents, fees in basis points rounded half up."""

from __future__ import annotations


def fee_cents(subtotal_cents: int, fee_bps: int) -> int:
    """The platform's fee on a subtotal: `fee_bps`/10,000 of it, rounded half up to the cent."""
    return (subtotal_cents * fee_bps * 2 + 10_000) // 20_000


def split(subtotal_cents: int, fee_bps: int) -> tuple[int, int]:
    """(seller's share, platform's fee) of a seller subtotal; the seller gets the rest after the fee."""
    fee = fee_cents(subtotal_cents, fee_bps)
    return subtotal_cents - fee, fee
