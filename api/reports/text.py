"""Checks of what residents type: Unicode normalised (NFC, so Vietnamese typed either way compares
equal), length in characters, no control characters, no undecodable bytes; contact fields by shape."""

from __future__ import annotations

import re
import secrets
import unicodedata

from api.reports.errors import ReportRefused

_ALLOWED_CONTROLS = {"\n", "\r", "\t"}
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s.]{2,}$")
# Crockford's base32: no I, L, O, U, so a code read aloud or typed on a phone is not misread.
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def clean_text(value: str | None, field: str, max_len: int, *, required: bool = False) -> str | None:
    text = unicodedata.normalize("NFC", value or "").strip()
    if not text:
        if required:
            raise ReportRefused("missing_field", f"{field} is required", 400)
        return None
    if "\ufffd" in text:
        raise ReportRefused("bad_encoding", f"{field} is not valid UTF-8 text", 400)
    if any(
        unicodedata.category(ch) in ("Cc", "Cs", "Co", "Cn") and ch not in _ALLOWED_CONTROLS for ch in text
    ):
        raise ReportRefused("bad_text", f"{field} contains control or unassigned characters", 400)
    if len(text) > max_len:
        raise ReportRefused("too_long", f"{field} is longer than {max_len} characters", 400)
    return text


def clean_email(value: str | None) -> str | None:
    email = clean_text(value, "email", 254)
    if email is not None and not _EMAIL.match(email):
        raise ReportRefused("bad_email", "email is not an e-mail address", 400)
    return email


def clean_phone(value: str | None) -> str | None:
    phone = clean_text(value, "phone", 32)
    if phone is None:
        return None
    digits = re.sub(r"[\s().-]", "", phone)
    if not re.fullmatch(r"\+?\d{8,15}", digits):
        raise ReportRefused("bad_phone", "phone must have 8 to 15 digits", 400)
    return digits


def contact_key(email: str | None, phone: str | None) -> str | None:
    """One key per contact for the open-report limit: the e-mail (case-folded) or the phone digits."""
    if email:
        return "e:" + email.casefold()
    if phone:
        return "p:" + phone.lstrip("+").removeprefix("84").lstrip("0")  # +84 90... and 090... are one
    return None


def new_tracking_code() -> str:
    """20 characters of base32 (100 bits: unguessable), shown in groups of four."""
    raw = "".join(secrets.choice(_ALPHABET) for _ in range(20))
    return "-".join(raw[i : i + 4] for i in range(0, 20, 4))


def normalise_code(code: str) -> str | None:
    """The canonical form of a typed code (any case, dashes or spaces, O for 0, I/L for 1), or None."""
    raw = re.sub(r"[\s-]", "", code.upper()).translate(str.maketrans("OIL", "011"))
    if len(raw) != 20 or any(c not in _ALPHABET for c in raw):
        return None
    return "-".join(raw[i : i + 4] for i in range(0, 20, 4))
