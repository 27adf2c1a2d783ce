"""Users, password hashes, signed session cookies and CSRF tokens.

* Passwords: ``hashlib.scrypt`` (n=2**14, r=8, p=1) with a 16-byte random salt, stored as
  ``scrypt$n$r$p$salt_hex$hash_hex``; compared in constant time. Nothing stores or logs a password.
* Sessions: the cookie is ``base64url(json{u, sid, exp}).hmac_sha256`` signed with a server-side secret kept in
  ``<data_dir>/review/secret.key`` (created once, mode 0600). The cookie is HttpOnly and SameSite=Strict.
* CSRF: the login form carries ``hmac(secret, "csrf|login|" + nonce)`` bound to a short-lived pre-session
  cookie holding the nonce; every other POST carries ``csrf_token`` (form field) or ``X-CSRF-Token`` (header) equal to
  ``hmac(secret, "csrf|" + sid)``: only a page the app served to this session knows it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from review.db import ROLES, now_iso, users

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SESSION_TTL_S = 12 * 3600
USER_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
MIN_PASSWORD = 8


class AuthError(ValueError):
    """A user name, role or password that cannot be used; the message says why."""


@dataclass(frozen=True)
class User:
    name: str
    role: str

    def may(self, role: str) -> bool:
        """True when this user's role is ``role`` or a more privileged one."""
        return ROLES.index(self.role) >= ROLES.index(role)


def hash_password(password: str) -> str:
    """``scrypt$n$r$p$salt$hash`` of ``password`` with a fresh random salt."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches the stored hash (constant-time compare); False for a malformed hash."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(
            password.encode("utf-8"),
            salt=bytes.fromhex(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(digest) // 2,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got.hex(), digest)


def add_user(engine: sa.Engine, name: str, role: str, password: str, *, replace: bool = False) -> User:
    """Create (or with ``replace``, reset) a user.

    Raises:
        AuthError: a bad name, unknown role, a password shorter than 8 characters, or an existing user.
    """
    if not USER_PATTERN.match(name or ""):
        raise AuthError(f"user name {name!r}: use 1-63 letters, digits, '.', '_' or '-'")
    if role not in ROLES:
        raise AuthError(f"role {role!r} is not one of {', '.join(ROLES)}")
    if len(password) < MIN_PASSWORD:
        raise AuthError(f"password for {name}: at least {MIN_PASSWORD} characters")
    values = {"role": role, "password_hash": hash_password(password), "created": now_iso()}
    with engine.begin() as conn:
        exists = conn.execute(sa.select(users.c.name).where(users.c.name == name)).first() is not None
        if exists and not replace:
            raise AuthError(f"user {name} exists already (use --replace to reset role and password)")
        if exists:
            conn.execute(sa.update(users).where(users.c.name == name).values(**values))
        else:
            conn.execute(sa.insert(users).values(name=name, **values))
    return User(name, role)


def authenticate(engine: sa.Engine, name: str, password: str) -> User | None:
    """The user when name and password match, else None (the same work is done for unknown names)."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(users).where(users.c.name == name)).first()
    if row is None:
        verify_password(password, hash_password("timing-equaliser"))
        return None
    return User(row.name, row.role) if verify_password(password, row.password_hash) else None


def load_user(engine: sa.Engine, name: str) -> User | None:
    with engine.connect() as conn:
        row = conn.execute(sa.select(users).where(users.c.name == name)).first()
    return User(row.name, row.role) if row is not None else None


def list_users(engine: sa.Engine) -> list[User]:
    with engine.connect() as conn:
        return [User(r.name, r.role) for r in conn.execute(sa.select(users).order_by(users.c.name))]


def load_secret(data_dir: Path) -> bytes:
    """The server-side signing secret, created once (32 random bytes) in ``<data_dir>/review/secret.key``, 0600."""
    path = Path(data_dir) / "review" / "secret.key"
    if path.exists():
        return bytes.fromhex(path.read_text("ascii").strip())
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(secrets.token_hex(32))
    os.replace(tmp, path)
    return bytes.fromhex(path.read_text("ascii").strip())


class Signer:
    """Signs and checks session cookies; derives CSRF tokens from a session id."""

    def __init__(self, secret: bytes, ttl_s: int = SESSION_TTL_S) -> None:
        self._secret = secret
        self.ttl_s = ttl_s

    def _mac(self, payload: bytes) -> str:
        return hmac.new(self._secret, payload, hashlib.sha256).hexdigest()

    def issue(self, user: str) -> tuple[str, str]:
        """(cookie value, session id) of a new session for ``user``."""
        sid = secrets.token_urlsafe(16)
        body = json.dumps(
            {"u": user, "sid": sid, "exp": int(time.time()) + self.ttl_s}, separators=(",", ":")
        )
        payload = base64.urlsafe_b64encode(body.encode("utf-8"))
        return payload.decode("ascii") + "." + self._mac(payload), sid

    def read(self, cookie: str | None) -> tuple[str, str] | None:
        """(user, session id) of a valid, unexpired cookie, else None."""
        if not cookie or "." not in cookie:
            return None
        payload, mac = cookie.rsplit(".", 1)
        if not hmac.compare_digest(self._mac(payload.encode("ascii", "replace")), mac):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))
            if int(data["exp"]) < time.time():
                return None
            return str(data["u"]), str(data["sid"])
        except (ValueError, KeyError, TypeError):
            return None

    def csrf_token(self, sid: str) -> str:
        return self._mac(b"csrf|" + sid.encode("utf-8"))

    def check_csrf(self, sid: str, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf_token(sid), str(token))
