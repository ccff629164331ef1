"""URLs as sqlwright shows them: never with a password (database URLs in messages and logs, the state
store's URL in run identities)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit


def mask_url(url: str) -> str:
    """`url` with its password (in the user part or a `password=` parameter) replaced by ***."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # an unclosed IPv6 bracket: mask `user:secret@` by its shape
        return re.sub(r"^([^:/?#]*://[^:/?#@]*):[^/?#@]*@", r"\1:***@", url)
    netloc = parts.netloc
    if password is not None:
        # The host and port as written: a bad port must not stop the masking (parts.port would raise).
        userinfo, _, host_port = netloc.rpartition("@")
        netloc = f"{userinfo.partition(':')[0]}:***@{host_port}"
    query = re.sub(r"(^|&)(password=)[^&]*", r"\1\2***", parts.query, flags=re.IGNORECASE)
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
