"""Exact money arithmetic.

Every amount in the ledger is an integer number of picodollars (1e-12 USD).
Bedrock prices are quoted in USD per million tokens with at most six decimals,
so the price of one token is an exact integer number of picodollars and every
sum of costs is exact: no float, no rounding, no drift.
"""

from __future__ import annotations

from decimal import Decimal

PICOS_PER_USD = 10**12
_PICOS = Decimal(PICOS_PER_USD)


class MoneyError(ValueError):
    """An amount that cannot be represented exactly."""


def usd_to_picos(usd: Decimal | str | int) -> int:
    """Convert a USD amount to picodollars, refusing anything inexact."""
    value = Decimal(str(usd)) * _PICOS
    if value != value.to_integral_value():
        raise MoneyError(f"{usd} USD is finer than a picodollar")
    return int(value)


def decimal_string(amount: Decimal) -> str:
    """A Decimal in plain positional form without trailing zeros (``"40"``, ``"0.125"``)."""
    return format(amount.normalize(), "f")


def picos_to_usd(picos: int) -> Decimal:
    """Convert picodollars to an exact USD Decimal (trailing zeros removed)."""
    result = (Decimal(picos) / _PICOS).normalize()
    # normalize() turns 100 into 1E+2; keep a plain positional form.
    return result.quantize(Decimal(1)) if result == result.to_integral() else result


def usd_string(picos: int) -> str:
    """Picodollars as a plain decimal USD string (``"1.25"``, ``"0"``), never exponent form."""
    return format(picos_to_usd(picos), "f")
