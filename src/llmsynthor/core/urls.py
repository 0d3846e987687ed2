"""Endpoint URLs: what is wrong with one, before anything is sent to it."""

from __future__ import annotations

from urllib.parse import urlsplit


def url_problem(url: str) -> str | None:
    """What is wrong with an endpoint URL (None if nothing): it needs http:// or https:// and a host."""
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError as exc:
        return f"not a URL ({exc}); expected e.g. http://localhost:8000/v1"
    if parts.scheme not in ("http", "https"):
        return "expected a URL starting with http:// or https://, e.g. http://localhost:8000/v1"
    if not parts.hostname:
        return "the URL names no host; expected e.g. http://localhost:8000/v1"
    return None
