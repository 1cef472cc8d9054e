"""E-mail addresses compared one way, in Python, whatever PostgreSQL's locale.

An address is stored as given (``users.email``, what the user sees) and
compared by its key (``users.email_key``, unique): Unicode NFKC, then
casefolded, the domain in its IDNA (ASCII) form. PostgreSQL's ``lower()``
folds only ASCII under the C locale, so ``Émile@x`` and ``émile@x`` were two
accounts, and the first could never sign in. Every path that finds or
creates a user by address goes through :func:`key`.
"""

from __future__ import annotations

import unicodedata

import idna


def key(address: str) -> str:
    """The form ``address`` is compared in.

    ``Émile.Curl@Bücher.Example`` becomes ``émile.curl@xn--bcher-kva.example``.
    """
    text = unicodedata.normalize("NFKC", address.strip())
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain:
        return text.casefold()  # not an address; validation refuses it elsewhere
    try:
        ascii_domain = idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError:
        ascii_domain = domain.casefold()
    return f"{local.casefold()}@{ascii_domain.lower()}"


def prefix_key(prefix: str) -> str:
    """A search prefix in the same form (its domain part, if any, may be incomplete)."""
    return unicodedata.normalize("NFKC", prefix.strip()).casefold()
