"""Sub-account ids: how an end user inside a shared account is named (the scan's findings and the gateway).

Kept apart from :mod:`distillguard.subaccounts` so the gateway's request path can name a sub-account
without importing the scan's scoring (pandas, the detectors).

Example:
    >>> sub_account_id("reseller-1", None), sub_account_id("reseller-1", -2)
    ('reseller-1#eu:none', 'reseller-1#eu:-2')
    >>> parent_of("reseller-1#eu:-2"), end_user_of("reseller-1#eu:-2"), end_user_of("reseller-1")
    ('reseller-1', '-2', None)
"""

from __future__ import annotations

SEPARATOR = "#eu:"


def sub_account_id(account_id: str, end_user_hash: int | str | None) -> str:
    """``<account>#eu:<end-user hash, decimal>`` (``none``: the account's requests without an end-user id)."""
    return f"{account_id}{SEPARATOR}{'none' if end_user_hash is None else end_user_hash}"


def parent_of(sub_id: str) -> str:
    return sub_id.rsplit(SEPARATOR, 1)[0]  # the end-user part never holds it; an account id may


def end_user_of(subject: str) -> str | None:
    """The end-user part of a sub-account id; None for a plain account id."""
    return subject.rsplit(SEPARATOR, 1)[1] if SEPARATOR in subject else None
