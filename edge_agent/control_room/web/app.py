"""The control-room console: server-rendered pages on Starlette, a live queue over server-sent events.

Pages: login, live queue (pending alerts newest first, a time-to-adjudicate counter), review
(decrypted probe crop beside the subject's reference images, score, threshold, model, deployment;
the decision form), fleet, retention and holds, accounts. Every view of an alert (page, crop,
reference image) and every decision is audited with the operator's identity
(``operator:<username>``). Security: argon2id passwords, throttled logins, sessions in the store
with idle and absolute expiry, an HttpOnly SameSite=Strict cookie (Secure behind TLS), a CSRF
token on every form, a strict Content-Security-Policy (no inline script or style), no caching.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from edge_agent.control_room import auditing
from edge_agent.control_room.accounts import AccountBook, LoginPolicy, LoginRefused, Session
from edge_agent.control_room.adjudication import Adjudication, adjudicate, apply_retention, place_hold, read_crop, release_hold
from edge_agent.control_room.auditing import AuditSink
from edge_agent.control_room.deployments import DeploymentBook
from edge_agent.control_room.fleet import FleetBook
from edge_agent.control_room.references import ReferenceBook
from edge_agent.control_room.store import PENDING, AlertStore, StoredAlert
from edge_agent.errors import EdgeAgentError
from edge_agent.identifiers import MAX_RETENTION_DAYS

HERE = Path(__file__).parent
SESSION_COOKIE = "ea_session"
LOGIN_COOKIE = "ea_login"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")
#: The only texts the login page shows after a refusal (never text taken from the URL).
LOGIN_MESSAGES = (LoginRefused.WRONG, LoginRefused.THROTTLED)
QUEUE_LIMIT = 200
POLL_S = 0.2


@dataclass
class ConsoleConfig:
    store: AlertStore
    audit: AuditSink
    control_room_key: X25519PrivateKey
    deployments: DeploymentBook | None = None  # shows each alert's deployment window when given
    secure_cookies: bool = False  # set when served over TLS (or behind a TLS proxy)
    policy: LoginPolicy = field(default_factory=LoginPolicy)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(timezone.utc))
    #: Hook for the delivery stream: called after a decision is committed and audited, to publish
    #: the signed lfr.adjudication/1 notice back to the device (docs/formats/topics.md).
    on_adjudicated: Callable[[StoredAlert, Adjudication], None] | None = None


class _Headers:
    """Pure ASGI middleware: security headers on every response (streams included)."""

    def __init__(self, app: Any, secure: bool) -> None:
        self.app = app
        self.headers = [
            (b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"), (b"cache-control", b"no-store"), (b"cross-origin-opener-policy", b"same-origin"),
        ]
        if secure:
            self.headers.append((b"strict-transport-security", b"max-age=31536000"))

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [h for h in message["headers"] if h[0].lower() != b"cache-control"] + self.headers
            await send(message)

        await self.app(scope, receive, with_headers)


def create_app(config: ConsoleConfig) -> Starlette:
    store = config.store
    accounts = AccountBook(store.db, config.policy)
    fleet = FleetBook(store.db)
    references = ReferenceBook(store.db)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    now = config.clock

    def audit(session: Session | None, kind: str, details: dict[str, Any]) -> None:
        config.audit.append(kind, details, actor=f"operator:{session.username}" if session else "control-room:console")

    def client_of(request: Request) -> str:
        return request.client.host if request.client else "unknown"

    async def session_for(request: Request, role: str = "viewer") -> Session:
        session = await run_in_threadpool(accounts.session, request.cookies.get(SESSION_COOKIE), now())
        if session is None:
            if request.method == "GET":
                raise HTTPException(303, headers={"Location": "/login"})
            raise HTTPException(403, "not logged in (or the session expired)")
        if not session.may(role):
            raise HTTPException(403, f"your role ({session.role}) may not do this; it needs {role}")
        return session

    async def form_for(request: Request, role: str) -> tuple[Session, Any]:
        """The session and form of a state-changing request, CSRF token checked."""
        session = await session_for(request, role)
        form = await request.form()
        token = form.get("csrf")
        if not isinstance(token, str) or not hmac.compare_digest(token.encode(), session.csrf.encode()):
            raise HTTPException(403, "missing or wrong CSRF token: reload the page and try again")
        return session, form

    def page(request: Request, name: str, session: Session | None, status: int = 200, **context: Any) -> Response:
        return templates.TemplateResponse(request, name, {"session": session, **context}, status_code=status)

    # ---- login ------------------------------------------------------------------------------
    async def login_page(request: Request) -> Response:
        token = secrets.token_urlsafe(24)
        error = request.query_params.get("error")
        response = page(request, "login.html", None, login_token=token, error=error if error in LOGIN_MESSAGES else None)
        response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict", secure=config.secure_cookies, path="/login")
        return response

    async def login(request: Request) -> Response:
        form = await request.form()
        cookie = request.cookies.get(LOGIN_COOKIE, "")
        sent = form.get("login_token")
        if not cookie or not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), cookie.encode()):
            raise HTTPException(403, "missing or wrong login token: reload the login page")
        username, password = str(form.get("username", ""))[:64], str(form.get("password", ""))
        try:
            token, session = await run_in_threadpool(accounts.login, username, password, client_of(request), now())
        except LoginRefused as exc:
            await run_in_threadpool(audit, None, auditing.LOGIN_FAILED, {"username": username, "client": client_of(request), "reason": exc.message})
            return RedirectResponse(f"/login?error={quote(exc.message)}", status_code=303)
        await run_in_threadpool(audit, session, auditing.LOGIN_SUCCEEDED, {"username": username, "client": client_of(request), "role": session.role})
        response = RedirectResponse("/queue", status_code=303)
        response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict", secure=config.secure_cookies, path="/")
        response.delete_cookie(LOGIN_COOKIE, path="/login")
        return response

    async def logout(request: Request) -> Response:
        session, _ = await form_for(request, "viewer")
        await run_in_threadpool(accounts.end_session, request.cookies.get(SESSION_COOKIE, ""))
        await run_in_threadpool(audit, session, auditing.LOGGED_OUT, {"username": session.username})
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    # ---- queue ------------------------------------------------------------------------------
    def queue_rows() -> list[dict[str, Any]]:
        return [a.queue_dict() for a in store.alerts(status=PENDING, newest_first=True, limit=QUEUE_LIMIT)]

    async def home(request: Request) -> Response:
        return RedirectResponse("/queue", status_code=303)

    async def queue(request: Request) -> Response:
        session = await session_for(request)
        return page(request, "queue.html", session, rows=await run_in_threadpool(queue_rows))

    async def queue_events(request: Request) -> Response:
        session = await session_for(request)

        async def stream():
            last = None
            idle = 0.0
            while not await request.is_disconnected():
                if await run_in_threadpool(accounts.session, request.cookies.get(SESSION_COOKIE), now(), False) is None:
                    yield "event: expired\ndata: {}\n\n"
                    return
                rows = await run_in_threadpool(queue_rows)
                signature = [(r["event_id"], r["status"], r["hold_reason"]) for r in rows]
                if signature != last:
                    last = signature
                    idle = 0.0
                    yield f"event: queue\ndata: {json.dumps({'rows': rows, 'user': session.username})}\n\n"
                elif idle >= 15:
                    idle = 0.0
                    yield ": keep-alive\n\n"
                await asyncio.sleep(POLL_S)
                idle += POLL_S

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"X-Accel-Buffering": "no"})

    # ---- review -----------------------------------------------------------------------------
    def alert_or_404(event_id: str) -> StoredAlert:
        try:
            return store.alert(event_id)
        except EdgeAgentError:
            raise HTTPException(404, "no such alert (it may have been deleted by retention)") from None

    async def review(request: Request) -> Response:
        session = await session_for(request)
        event_id = request.path_params["event_id"]
        alert = await run_in_threadpool(alert_or_404, event_id)
        await run_in_threadpool(audit, session, auditing.ALERT_VIEWED, {"event_id": event_id, "status": alert.status, "via": "console"})
        record = None
        if config.deployments is not None:
            record = await run_in_threadpool(config.deployments.record, alert.deployment_id)
        refs = await run_in_threadpool(references.count, alert.deployment_id, alert.subject_ref)
        return page(request, "review.html", session, alert=alert, deployment=record, references=range(refs),
                    adjudications=await run_in_threadpool(store.adjudications, event_id),
                    holds=await run_in_threadpool(store.hold_history, event_id), message=request.query_params.get("message"))

    async def crop(request: Request) -> Response:
        session = await session_for(request)
        event_id = request.path_params["event_id"]
        alert = await run_in_threadpool(alert_or_404, event_id)
        jpeg = await run_in_threadpool(read_crop, store, event_id, config.control_room_key)
        await run_in_threadpool(audit, session, auditing.ALERT_VIEWED, {"event_id": event_id, "status": alert.status, "via": "console:crop"})
        return Response(jpeg, media_type="image/jpeg")

    async def reference(request: Request) -> Response:
        session = await session_for(request)
        event_id = request.path_params["event_id"]
        alert = await run_in_threadpool(alert_or_404, event_id)
        try:
            data, _ = await run_in_threadpool(references.image, alert.deployment_id, alert.subject_ref, int(request.path_params["idx"]),
                                              config.control_room_key)
        except EdgeAgentError:
            raise HTTPException(404, "no such reference image") from None
        await run_in_threadpool(audit, session, auditing.ALERT_VIEWED, {"event_id": event_id, "status": alert.status, "via": "console:reference"})
        return Response(data, media_type="image/png" if data.startswith(b"\x89PNG") else "image/jpeg")

    async def decide(request: Request) -> Response:
        session, form = await form_for(request, "adjudicator")
        event_id = request.path_params["event_id"]
        engaged = {"yes": True, "no": False}.get(str(form.get("engaged", "")))
        try:
            decision = Adjudication(event_id, str(form.get("decision", "")), session.username, str(form.get("reason", "")), engaged, now())
            await run_in_threadpool(adjudicate, store, decision, config.audit, f"operator:{session.username}")
        except EdgeAgentError as exc:
            return RedirectResponse(f"/alerts/{event_id}?message={quote('refused: ' + exc.message)}", status_code=303)
        if config.on_adjudicated is not None:
            await run_in_threadpool(config.on_adjudicated, await run_in_threadpool(alert_or_404, event_id), decision)
        return RedirectResponse(f"/alerts/{event_id}?message={quote('decision recorded: ' + decision.decision)}", status_code=303)

    async def hold(request: Request) -> Response:
        if request.path_params["action"] not in ("hold", "release"):
            raise HTTPException(404, "no such action")
        session, form = await form_for(request, "supervisor")
        event_id = request.path_params["event_id"]
        action = place_hold if request.path_params["action"] == "hold" else release_hold
        try:
            await run_in_threadpool(action, store, event_id, str(form.get("reason", "")), session.username, now(), config.audit,
                                    f"operator:{session.username}")
        except EdgeAgentError as exc:
            return RedirectResponse(f"/alerts/{event_id}?message={quote('refused: ' + exc.message)}", status_code=303)
        return RedirectResponse(f"/alerts/{event_id}?message={quote('legal hold ' + ('placed' if action is place_hold else 'released'))}", status_code=303)

    # ---- fleet, retention, accounts ---------------------------------------------------------
    async def fleet_page(request: Request) -> Response:
        session = await session_for(request)
        return page(request, "fleet.html", session, devices=await run_in_threadpool(fleet.devices, now()))

    async def retention_page(request: Request) -> Response:
        session = await session_for(request, "supervisor")
        held = [a for a in await run_in_threadpool(store.alerts) if a.hold_reason]
        return page(request, "retention.html", session, held=held, max_days=MAX_RETENTION_DAYS, message=request.query_params.get("message"))

    async def purge(request: Request) -> Response:
        session, form = await form_for(request, "supervisor")
        try:
            days = float(str(form.get("retention_days", MAX_RETENTION_DAYS)))
            result = await run_in_threadpool(apply_retention, store, now(), timedelta(days=days), config.audit, f"operator:{session.username}")
        except (EdgeAgentError, ValueError) as exc:
            return RedirectResponse(f"/retention?message={quote('refused: ' + str(getattr(exc, 'message', exc)))}", status_code=303)
        return RedirectResponse(f"/retention?message={quote(f'deleted {len(result.deleted)} alert(s)')}", status_code=303)

    async def accounts_page(request: Request) -> Response:
        session = await session_for(request, "supervisor")
        return page(request, "accounts.html", session, accounts=await run_in_threadpool(accounts.accounts), message=request.query_params.get("message"))

    async def account_change(request: Request) -> Response:
        session, form = await form_for(request, "supervisor")
        action = request.path_params["action"]
        username = str(form.get("username", ""))
        try:
            if action == "create":
                await run_in_threadpool(accounts.create, username, str(form.get("role", "")), str(form.get("password", "")), session.username, now())
            elif action in ("disable", "enable"):
                if username == session.username:
                    raise EdgeAgentError("you cannot disable your own account", "ask another supervisor")
                await run_in_threadpool(accounts.set_disabled, username, action == "disable")
            else:
                raise HTTPException(404)
        except EdgeAgentError as exc:
            return RedirectResponse(f"/accounts?message={quote('refused: ' + exc.message)}", status_code=303)
        details = {"username": username, "action": action}
        if action == "create":
            details["role"] = str(form.get("role", ""))
        await run_in_threadpool(audit, session, auditing.ACCOUNT_CHANGED, details)
        return RedirectResponse(f"/accounts?message={quote(f'{action}d {username}')}", status_code=303)

    async def error(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, HTTPException):  # registered for HTTPException only
            raise exc
        if exc.status_code in (301, 302, 303):
            return Response(status_code=exc.status_code, headers=exc.headers)
        return page(request, "error.html", None, status=exc.status_code, detail=exc.detail)

    routes = [
        Route("/", home),
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/queue", queue),
        Route("/queue/events", queue_events),
        Route("/alerts/{event_id}", review),
        Route("/alerts/{event_id}/crop.jpg", crop),
        Route("/alerts/{event_id}/reference/{idx:int}", reference),
        Route("/alerts/{event_id}/adjudicate", decide, methods=["POST"]),
        Route("/alerts/{event_id}/{action:str}", hold, methods=["POST"]),
        Route("/fleet", fleet_page),
        Route("/retention", retention_page),
        Route("/retention/purge", purge, methods=["POST"]),
        Route("/accounts", accounts_page),
        Route("/accounts/{action:str}", account_change, methods=["POST"]),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: error}, max_body_size=64 * 1024)
    app.add_middleware(_Headers, secure=config.secure_cookies)
    return app
