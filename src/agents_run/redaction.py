"""Keeping secrets out of errors and logs: URLs are shown with their password replaced."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit, urlunsplit

_SECRET_QUERY_KEYS = frozenset({"password", "passwd", "sslpassword"})


def redact(url: str) -> str:
    """``url`` with any password (in the user info or the query) replaced by ``***``."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<unparseable url>"
    secret_in_query = any(key.lower() in _SECRET_QUERY_KEYS for key, _ in parse_qsl(parts.query))
    if password is None and not secret_in_query:
        return url
    if password is not None:
        host = parts.netloc.rsplit("@", 1)[-1]
        parts = parts._replace(netloc=f"{parts.username or ''}:***@{host}")
    if secret_in_query:
        query = "&".join(
            f"{key}=***" if key.lower() in _SECRET_QUERY_KEYS else f"{key}={value}"
            for key, value in parse_qsl(parts.query)
        )
        parts = parts._replace(query=query)
    return urlunsplit(parts)


def secrets_of(url: str) -> list[str]:
    """The passwords ``url`` carries, to scrub from messages written by libraries."""
    try:
        parts = urlsplit(url)
        found = [parts.password] if parts.password else []
    except ValueError:
        return []
    found += [v for k, v in parse_qsl(parts.query) if k.lower() in _SECRET_QUERY_KEYS and v]
    return found


def scrub(text: str, secrets: list[str]) -> str:
    """``text`` with every one of ``secrets`` replaced by ``***``."""
    for secret in secrets:
        text = text.replace(secret, "***")
    return text
