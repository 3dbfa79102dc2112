"""Secrets out of logs, errors and reprs: the one rule for masking a URL's password.

Dependency-free, so that :mod:`fastflow.config` and :mod:`fastflow.store.target`
(and anything else that shows a URL) mask the same way.
"""

from __future__ import annotations

import re

#: What a password becomes by default.
MASK = "***"

_USERINFO = re.compile(r"^([A-Za-z0-9+.-]*://)([^/?#]*)@")
_PASSWORD_OPTION = re.compile(r"([?&]password=)[^&#]*")


def mask_url(url: str, mask: str = MASK) -> str:
    """``url`` with any password replaced by ``mask``: the one in the user info
    (``user:PASSWORD@``, or ``PASSWORD@`` alone, which redis-cli reads as a
    password) and every ``password=`` option of the query string. Anything
    else, including an ``@`` in a unix socket's path, is left as it is."""
    def userinfo(found: re.Match[str]) -> str:
        user, colon, _ = found.group(2).partition(":")
        return f"{found.group(1)}{user}:{mask}@" if colon else f"{found.group(1)}{mask}@"

    url = _USERINFO.sub(userinfo, url)
    return _PASSWORD_OPTION.sub(lambda found: found.group(1) + mask, url)
