"""Console operators: local accounts with argon2id password hashes, roles, sessions, throttled logins.

Roles, each including the one before: ``viewer`` (queue, alerts, fleet), ``adjudicator``
(records decisions), ``supervisor`` (legal holds, retention runs, accounts). Sessions live in the
store (so several consoles share them); only a SHA-256 of the session token is kept, with the
session's CSRF token, an idle expiry and an absolute expiry. A username with too many recent
failed logins, or a client with too many, is refused even with the right password until the
window has passed. Account changes and logins are audited by the caller (edge_agent.control_room.web).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from edge_agent.control_room.db import Database, StoreError
from edge_agent.errors import ConfigError, EdgeAgentError
from edge_agent.events.schema import format_time, parse_time

ROLES = ("viewer", "adjudicator", "supervisor")
_USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,31}")
MIN_PASSWORD = 12
MAX_PASSWORD = 1024


class LoginRefused(EdgeAgentError):
    """Wrong username or password, a disabled account, or too many recent failures."""

    WRONG = "wrong username or password, or the account is disabled"
    THROTTLED = "too many failed logins"


@dataclass(frozen=True)
class LoginPolicy:
    idle: timedelta = timedelta(minutes=15)
    absolute: timedelta = timedelta(hours=8)
    failure_window: timedelta = timedelta(minutes=15)
    max_user_failures: int = 5
    max_client_failures: int = 20


@dataclass(frozen=True)
class Account:
    username: str
    role: str
    disabled: bool
    created_at: str
    created_by: str

    def may(self, role: str) -> bool:
        """True if this account's role includes ``role``."""
        return not self.disabled and ROLES.index(self.role) >= ROLES.index(role)


@dataclass(frozen=True)
class Session:
    username: str
    role: str
    csrf: str
    expires_at: datetime

    def may(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


def check_username(username: str) -> str:
    if not isinstance(username, str) or not _USERNAME.fullmatch(username):
        raise ConfigError(f"username {username!r} is invalid", "use 1-32 lower-case letters, digits, '.', '_' or '-'")
    return username


def check_role(role: str) -> str:
    if role not in ROLES:
        raise ConfigError(f"role {role!r} is not one of {', '.join(ROLES)}", "viewer: look; adjudicator: decide; supervisor: holds, purges, accounts")
    return role


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


class AccountBook:
    def __init__(self, db: Database, policy: LoginPolicy | None = None) -> None:
        from argon2 import PasswordHasher

        self._db = db
        self.policy = policy or LoginPolicy()
        self._hasher = PasswordHasher()  # argon2id, RFC 9106 low-memory profile (64 MiB, t=3)
        self._dummy = self._hasher.hash(secrets.token_hex(16))  # equal work for unknown usernames

    # ---- accounts ---------------------------------------------------------------------------
    def create(self, username: str, role: str, password: str, created_by: str, now: datetime) -> Account:
        check_username(username)
        check_role(role)
        self._check_password(password, username)
        with self._db.write() as tx:
            if tx.one("SELECT 1 FROM accounts WHERE username=?", (username,)) is not None:
                raise StoreError(f"account {username} already exists", "change its role or password instead")
            tx.run("INSERT INTO accounts (username, role, password_hash, disabled, created_at, created_by) VALUES (?,?,?,?,?,?)",
                   (username, role, self._hasher.hash(password), 0, format_time(now), created_by))
        return self.account(username)

    def set_password(self, username: str, password: str) -> None:
        self._check_password(password, username)
        with self._db.write() as tx:
            if tx.run("UPDATE accounts SET password_hash=? WHERE username=?", (self._hasher.hash(password), username)) != 1:
                raise StoreError(f"no account {username}", "list accounts with: edge-agent control-room accounts list")
            tx.run("DELETE FROM sessions WHERE username=?", (username,))

    def set_role(self, username: str, role: str) -> None:
        check_role(role)
        with self._db.write() as tx:
            if tx.run("UPDATE accounts SET role=? WHERE username=?", (role, username)) != 1:
                raise StoreError(f"no account {username}", "list accounts with: edge-agent control-room accounts list")
            tx.run("DELETE FROM sessions WHERE username=?", (username,))

    def set_disabled(self, username: str, disabled: bool) -> None:
        with self._db.write() as tx:
            if tx.run("UPDATE accounts SET disabled=? WHERE username=?", (int(disabled), username)) != 1:
                raise StoreError(f"no account {username}", "list accounts with: edge-agent control-room accounts list")
            if disabled:
                tx.run("DELETE FROM sessions WHERE username=?", (username,))

    def account(self, username: str) -> Account:
        with self._db.read() as tx:
            row = tx.one("SELECT username, role, disabled, created_at, created_by FROM accounts WHERE username=?", (username,))
        if row is None:
            raise StoreError(f"no account {username}", "list accounts with: edge-agent control-room accounts list")
        return Account(row[0], row[1], bool(row[2]), row[3], row[4])

    def accounts(self) -> list[Account]:
        with self._db.read() as tx:
            rows = tx.rows("SELECT username, role, disabled, created_at, created_by FROM accounts ORDER BY username")
        return [Account(r[0], r[1], bool(r[2]), r[3], r[4]) for r in rows]

    def _check_password(self, password: str, username: str) -> None:
        if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
            raise ConfigError(f"a password must have {MIN_PASSWORD} to {MAX_PASSWORD} characters", "use a passphrase of several words")
        if username.lower() in password.lower():
            raise ConfigError("the password contains the username", "choose a password unrelated to the account name")

    # ---- logins and sessions ----------------------------------------------------------------
    def login(self, username: str, password: str, client: str, now: datetime) -> tuple[str, Session]:
        """A new session token and its session; LoginRefused (recorded as a failure) otherwise."""
        from argon2.exceptions import InvalidHashError, VerificationError

        since = format_time(now - self.policy.failure_window)
        client = client[:64]
        with self._db.read() as tx:
            user_failures = tx.one("SELECT COUNT(*) FROM login_failures WHERE username=? AND at >= ?", (username[:64], since))[0]
            client_failures = tx.one("SELECT COUNT(*) FROM login_failures WHERE client=? AND at >= ?", (client, since))[0]
            row = tx.one("SELECT password_hash, role, disabled FROM accounts WHERE username=?", (username,))
        if user_failures >= self.policy.max_user_failures or client_failures >= self.policy.max_client_failures:
            self._fail(username, client, now)
            raise LoginRefused(LoginRefused.THROTTLED, f"wait {int(self.policy.failure_window.total_seconds() // 60)} minutes and try again")
        try:
            self._hasher.verify(row[0] if row else self._dummy, password)
            ok = row is not None and not row[2]
        except (VerificationError, InvalidHashError):
            ok = False
        if not ok:
            self._fail(username, client, now)
            raise LoginRefused(LoginRefused.WRONG, "check them, or ask a supervisor")
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        expires = now + self.policy.absolute
        with self._db.write() as tx:
            tx.run("DELETE FROM login_failures WHERE username=?", (username,))
            tx.run("DELETE FROM sessions WHERE expires_at < ?", (format_time(now),))
            tx.run("INSERT INTO sessions (token_sha256, username, csrf, created_at, last_seen, expires_at) VALUES (?,?,?,?,?,?)",
                   (_token_hash(token), username, csrf, format_time(now), format_time(now), format_time(expires)))
        return token, Session(username, row[1], csrf, expires)

    def _fail(self, username: str, client: str, now: datetime) -> None:
        with self._db.write() as tx:
            tx.run("INSERT INTO login_failures (username, client, at) VALUES (?,?,?)", (username[:64], client, format_time(now)))
            tx.run("DELETE FROM login_failures WHERE at < ?", (format_time(now - 4 * self.policy.failure_window),))

    def session(self, token: str | None, now: datetime, touch: bool = True) -> Session | None:
        """The live session for a cookie value, or None (unknown, idle too long, past its end, or
        its account disabled). ``touch`` extends the idle timer."""
        if not token or len(token) > 128:
            return None
        digest = _token_hash(token)
        with self._db.read() as tx:
            row = tx.one(
                "SELECT s.username, a.role, s.csrf, s.last_seen, s.expires_at, a.disabled FROM sessions s "
                "JOIN accounts a ON a.username = s.username WHERE s.token_sha256=?", (digest,))
        if row is None:
            return None
        username, role, csrf, last_seen, expires_at, disabled = row
        expires = parse_time(expires_at)
        if disabled or now >= expires or now - parse_time(last_seen) > self.policy.idle:
            self.end_session(token)
            return None
        if touch:
            with self._db.write() as tx:
                tx.run("UPDATE sessions SET last_seen=? WHERE token_sha256=?", (format_time(now), digest))
        return Session(username, role, csrf, expires)

    def end_session(self, token: str) -> None:
        with self._db.write() as tx:
            tx.run("DELETE FROM sessions WHERE token_sha256=?", (_token_hash(token),))
