"""Users, sessions and API keys in the service's database (``api.auth.db``).

Secrets at rest: passwords as Argon2id hashes; session tokens and API key secrets
(256 bits of randomness each, so a fast hash is enough) as SHA-256. A password
change ends every session of the user; a disabled user or revoked key stops
working at its next request.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass

from api.auth.db import SecurityDb
from api.auth.passwords import check_strength, hash_password, verify_password
from api.auth.principal import Principal, Role

KEY_PREFIX = "khp_"


def _now_us() -> int:
    return int(time.time() * 1_000_000)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class UserInfo:
    id: int
    username: str
    role: Role
    scopes: list[str]
    unredacted: bool
    disabled: bool
    must_change: bool


class UserError(ValueError):
    """A user operation that cannot be done (duplicate name, weak password, unknown user)."""


class AuthStore:
    def __init__(self, db: SecurityDb) -> None:
        self.db = db

    # users ---------------------------------------------------------------------------------------
    def add_user(
        self,
        username: str,
        password: str,
        role: Role,
        scopes: list[str],
        *,
        unredacted: bool = False,
        must_change: bool = False,
    ) -> UserInfo:
        if not username or len(username) > 64 or not all(c.isalnum() or c in "._-@" for c in username):
            raise UserError("username: use 1-64 letters, digits, '.', '_', '-' or '@'")
        try:
            check_strength(password)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        pw = hash_password(password)
        with self.db.tx() as c:
            if c.execute("SELECT 1 FROM users WHERE username = ?", (username,)).fetchone():
                raise UserError(f"user {username!r} exists")
            c.execute(
                "INSERT INTO users (username, password_hash, role, scopes, unredacted, must_change,"
                " created_us) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (username, pw, str(role), json.dumps(scopes), int(unredacted), int(must_change), _now_us()),
            )
        user = self.user(username)
        assert user is not None
        return user

    def user(self, username: str) -> UserInfo | None:
        rows = self.db.read("SELECT * FROM users WHERE username = ?", (username,))
        return _user(rows[0]) if rows else None

    def user_by_id(self, user_id: int) -> UserInfo | None:
        rows = self.db.read("SELECT * FROM users WHERE id = ?", (user_id,))
        return _user(rows[0]) if rows else None

    def users(self) -> list[UserInfo]:
        return [_user(r) for r in self.db.read("SELECT * FROM users ORDER BY username")]

    def count_users(self) -> int:
        return int(self.db.read("SELECT count(*) AS n FROM users")[0]["n"])

    def update_user(
        self,
        username: str,
        *,
        role: Role | None = None,
        scopes: list[str] | None = None,
        unredacted: bool | None = None,
        disabled: bool | None = None,
    ) -> UserInfo:
        sets, params = [], []
        for column, value in (
            ("role", None if role is None else str(role)),
            ("scopes", None if scopes is None else json.dumps(scopes)),
            ("unredacted", None if unredacted is None else int(unredacted)),
            ("disabled", None if disabled is None else int(disabled)),
        ):
            if value is not None:
                sets.append(f"{column} = ?")
                params.append(value)
        with self.db.tx() as c:
            row = c.execute("SELECT id FROM users WHERE username = ?", (username,)).fetchone()
            if row is None:
                raise UserError(f"no user {username!r}")
            if sets:
                c.execute(f"UPDATE users SET {', '.join(sets)} WHERE id = ?", (*params, row["id"]))
            if disabled or role is not None or scopes is not None:
                c.execute("DELETE FROM sessions WHERE user_id = ?", (row["id"],))  # new rights, new login
        user = self.user(username)
        assert user is not None
        return user

    def set_password(self, username: str, password: str, *, must_change: bool = False) -> None:
        """Change a password; every session of the user ends."""
        try:
            check_strength(password)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        pw = hash_password(password)
        with self.db.tx() as c:
            row = c.execute("SELECT id FROM users WHERE username = ?", (username,)).fetchone()
            if row is None:
                raise UserError(f"no user {username!r}")
            c.execute(
                "UPDATE users SET password_hash = ?, must_change = ? WHERE id = ?",
                (pw, int(must_change), row["id"]),
            )
            c.execute("DELETE FROM sessions WHERE user_id = ?", (row["id"],))

    def check_password(self, username: str, password: str) -> UserInfo | None:
        """The user when the password is right and the account enabled; argon2 runs either way."""
        rows = self.db.read("SELECT * FROM users WHERE username = ?", (username,))
        stored = rows[0]["password_hash"] if rows else None
        if not verify_password(stored, password) or rows[0]["disabled"]:
            return None
        return _user(rows[0])

    # sessions ------------------------------------------------------------------------------------
    def new_session(self, user: UserInfo, ttl_s: float) -> tuple[str, str]:
        """(session token for the cookie, CSRF token)."""
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
        now = _now_us()
        with self.db.tx() as c:
            c.execute("DELETE FROM sessions WHERE expires_us < ?", (now,))
            c.execute(
                "INSERT INTO sessions (token_hash, user_id, csrf, created_us, expires_us)"
                " VALUES (?, ?, ?, ?, ?)",
                (_sha(token), user.id, csrf, now, now + int(ttl_s * 1e6)),
            )
        return token, csrf

    def session_principal(self, token: str) -> Principal | None:
        rows = self.db.read(
            "SELECT s.token_hash, s.csrf, s.expires_us, u.* FROM sessions s JOIN users u ON u.id = s.user_id"
            " WHERE s.token_hash = ?",
            (_sha(token),),
        )
        if not rows or rows[0]["expires_us"] < _now_us() or rows[0]["disabled"]:
            return None
        r = rows[0]
        return Principal(
            kind="user",
            id=str(r["id"]),
            name=r["username"],
            role=Role(r["role"]),
            scopes=tuple(json.loads(r["scopes"])),
            unredacted=bool(r["unredacted"]),
            session_id=r["token_hash"],
            csrf=r["csrf"],
            must_change=bool(r["must_change"]),
        )

    def end_session(self, token_hash: str) -> None:
        with self.db.tx() as c:
            c.execute("DELETE FROM sessions WHERE token_hash = ?", (token_hash,))

    # API keys ------------------------------------------------------------------------------------
    def add_key(self, name: str, role: Role, scopes: list[str]) -> tuple[str, str]:
        """(key id, the whole key: shown once, only its hash is kept)."""
        key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        with self.db.tx() as c:
            c.execute(
                "INSERT INTO api_keys (id, secret_hash, name, role, scopes, created_us)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (key_id, _sha(secret), name, str(role), json.dumps(scopes), _now_us()),
            )
        return key_id, f"{KEY_PREFIX}{key_id}_{secret}"

    def api_keys(self) -> list[dict]:
        return [
            {
                "id": r["id"],
                "name": r["name"],
                "role": r["role"],
                "scopes": json.loads(r["scopes"]),
                "revoked": bool(r["revoked"]),
            }
            for r in self.db.read("SELECT * FROM api_keys ORDER BY created_us")
        ]

    def revoke_key(self, key_id: str) -> bool:
        with self.db.tx() as c:
            return c.execute("UPDATE api_keys SET revoked = 1 WHERE id = ?", (key_id,)).rowcount == 1

    def key_principal(self, key: str) -> Principal | None:
        if not key.startswith(KEY_PREFIX) or "_" not in key[len(KEY_PREFIX) :]:
            return None
        key_id, _, secret = key[len(KEY_PREFIX) :].partition("_")
        rows = self.db.read("SELECT * FROM api_keys WHERE id = ?", (key_id,))
        if not rows or rows[0]["revoked"] or not secrets.compare_digest(rows[0]["secret_hash"], _sha(secret)):
            return None
        r = rows[0]
        return Principal(
            kind="key",
            id=r["id"],
            name=f"key:{r['name']}",
            role=Role(r["role"]),
            scopes=tuple(json.loads(r["scopes"])),
        )


def _user(r: object) -> UserInfo:
    return UserInfo(
        id=r["id"],  # type: ignore[index]
        username=r["username"],  # type: ignore[index]
        role=Role(r["role"]),  # type: ignore[index]
        scopes=json.loads(r["scopes"]),  # type: ignore[index]
        unredacted=bool(r["unredacted"]),  # type: ignore[index]
        disabled=bool(r["disabled"]),  # type: ignore[index]
        must_change=bool(r["must_change"]),  # type: ignore[index]
    )
