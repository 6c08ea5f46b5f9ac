"""Camera URLs: hide the credentials they carry, and tell live streams from files.

Camera URLs routinely embed a password (``rtsp://admin:hunter2@10.0.0.7/stream1``) and FFmpeg
repeats the URL in its error messages. Everything the ingest stage shows (logs, exceptions,
status) goes through :func:`mask_url` / :func:`mask_text` first.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

MASK = "***"

# Query parameters some cameras and gateways use for secrets (Dahua/Hikvision style
# ``?user=admin&password=...``, tokens of cloud relays, signed URLs).
SECRET_QUERY_KEYS = frozenset(
    {
        "password",
        "passwd",
        "pass",
        "pwd",
        "token",
        "access_token",
        "auth",
        "authorization",
        "key",
        "apikey",
        "api_key",
        "secret",
        "signature",
        "sig",
        "credential",
        "credentials",
    }
)

LIVE_SCHEMES = frozenset({"rtsp", "rtsps", "rtmp", "rtmps", "srt", "udp", "rtp", "tcp"})

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
# Fallback for strings urlsplit rejects: hide anything between "//" and the last "@" of the
# authority-looking part.
_USERINFO_FALLBACK = re.compile(r"(//)[^\s/?#]*@")


def _mask_userinfo(userinfo: str) -> str:
    user, sep, _password = userinfo.partition(":")
    if not sep:
        # A lone userinfo may be a bearer token (``rtsp://TOKEN@host``): hide it whole.
        return MASK
    return f"{user}:{MASK}"


def _split_userinfo(rest: str) -> tuple[str | None, str]:
    """Split what follows ``scheme://`` into (userinfo, remainder); userinfo None if absent.

    A raw password may contain ``/`` (users paste them unencoded), which would end the
    authority early: if an ``@`` appears later in the path and the text before it contains
    ``:``, all of it is taken as userinfo so no part of the password leaks.
    """
    end = len(rest)
    for ch in "?#":
        pos = rest.find(ch)
        if pos != -1:
            end = min(end, pos)
    slash = rest.find("/")
    authority_end = end if slash == -1 else min(slash, end)
    at = rest.rfind("@", 0, authority_end)
    if at != -1:
        return rest[:at], rest[at + 1 :]
    at = rest.rfind("@", 0, end)
    if at != -1 and ":" in rest[:at] and "/" in rest[:at]:
        return rest[:at], rest[at + 1 :]
    return None, rest


def _mask_query(query: str) -> str:
    if not query:
        return query
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=False)
    except ValueError:
        return query
    if not any(k.lower() in SECRET_QUERY_KEYS for k, _ in pairs):
        return query
    masked = [(k, MASK if k.lower() in SECRET_QUERY_KEYS else v) for k, v in pairs]
    return urlencode(masked, safe="*/:", quote_via=quote)


def mask_url(url: str) -> str:
    """Return ``url`` with its password (and secret query parameters) replaced by ``***``.

    ``rtsp://admin:s3cret@cam/stream`` becomes ``rtsp://admin:***@cam/stream``; a userinfo with
    no ``:`` (possibly a token) is hidden whole (``rtsp://***@cam/stream``); ``?password=x`` and
    similar keys become ``?password=***``. Strings without a ``scheme://`` (file paths) are
    returned unchanged. Idempotent.
    """
    match = _SCHEME.match(url)
    if match is None:
        return url
    head = match.group(0)
    userinfo, rest = _split_userinfo(url[len(head) :])
    if userinfo is not None:
        rest = f"{_mask_userinfo(userinfo)}@{rest}"
    masked = head + rest
    try:
        parts = urlsplit(masked)
    except ValueError:
        return _USERINFO_FALLBACK.sub(lambda m: m.group(1) + MASK + "@", masked)
    query = _mask_query(parts.query)
    if query == parts.query:
        return masked
    return urlunsplit(parts._replace(query=query))


def url_secrets(url: str) -> list[str]:
    """The secret substrings of ``url`` (password, raw and percent-decoded; secret query values)."""
    match = _SCHEME.match(url)
    if match is None:
        return []
    secrets: list[str] = []
    userinfo, _rest = _split_userinfo(url[len(match.group(0)) :])
    if userinfo is not None:
        user, sep, password = userinfo.partition(":")
        secret = password if sep else user
        secrets += [secret, unquote(secret)]
    try:
        query = urlsplit(url).query
    except ValueError:
        query = ""
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key.lower() in SECRET_QUERY_KEYS:
            secrets += [value, quote(value, safe="")]
    # Longest first so a secret containing another is replaced whole.
    return sorted({s for s in secrets if s and s != MASK}, key=len, reverse=True)


def mask_text(text: str, url: str) -> str:
    """Scrub ``url``'s credentials out of free text such as an FFmpeg error message."""
    masked_url = mask_url(url)
    out = text.replace(url, masked_url)
    for variant in {unquote(url)} - {url}:
        out = out.replace(variant, masked_url)
    for secret in url_secrets(url):
        out = out.replace(secret, MASK)
    return out


def is_live_url(source: str) -> bool:
    """True for network stream URLs (RTSP, RTMP, SRT, UDP ...), False for files and file URLs."""
    match = _SCHEME.match(source)
    return match is not None and match.group(1).lower() in LIVE_SCHEMES
