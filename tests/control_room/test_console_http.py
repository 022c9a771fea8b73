"""The console over HTTP (Starlette's test client, real store, real argon2, real audit log):
login, roles, CSRF, forged cookies, throttling, expiry, audited views and decisions."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from starlette.testclient import TestClient

from edge_agent.audit.log import AuditLog
from edge_agent.control_room.accounts import AccountBook, LoginPolicy
from edge_agent.control_room.web.app import CSP, ConsoleConfig, create_app
from edge_agent.events.signing import encode_event
from test_intake import JPEG, T0, event, make_world, topic

PASSWORD = "correct horse battery staple"


@pytest.fixture
def console(store_location, tmp_path):
    world = make_world(store_location)
    ev = event(world)
    assert world.intake.receive(topic(), encode_event(ev)).accepted
    book = AccountBook(world.store.db)
    for name, role in (("vera", "viewer"), ("adam", "adjudicator"), ("suki", "supervisor")):
        book.create(name, role, PASSWORD, "test", T0)
    audit = AuditLog.open(tmp_path / "console-audit.log", None, "control-room:console")
    world.clock.now = T0 + timedelta(minutes=1)
    app = create_app(ConsoleConfig(world.store, audit, world.cr, world.deployments, policy=LoginPolicy(), clock=world.clock))
    yield world, app, ev, tmp_path / "console-audit.log"
    audit.close()
    world.store.close()


def login(app, username, password=PASSWORD) -> TestClient:
    client = TestClient(app, follow_redirects=False)
    page = client.get("/login")
    token = re.search(r'name="login_token" value="([^"]+)"', page.text).group(1)
    client.post("/login", data={"login_token": token, "username": username, "password": password})
    return client


def csrf_of(client: TestClient, path: str = "/queue") -> str:
    return re.search(r'name="csrf" value="([^"]+)"', client.get(path).text).group(1)


def audit_records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_login_sets_a_strict_httponly_session_and_every_page_has_a_strict_csp(console):
    world, app, ev, _ = console
    client = TestClient(app, follow_redirects=False)
    assert client.get("/queue").headers["location"] == "/login"
    page = client.get("/login")
    assert page.headers["content-security-policy"] == CSP and "'unsafe-inline'" not in CSP
    assert page.headers["cache-control"] == "no-store" and page.headers["x-frame-options"] == "DENY"
    token = re.search(r'name="login_token" value="([^"]+)"', page.text).group(1)
    # A login without the login token (cross-site login) is refused.
    assert client.post("/login", data={"username": "adam", "password": PASSWORD}).status_code == 403
    response = client.post("/login", data={"login_token": token, "username": "adam", "password": PASSWORD})
    assert response.status_code == 303 and response.headers["location"] == "/queue"
    cookie = [h for h in response.headers.get_list("set-cookie") if h.startswith("ea_session=")][0].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie and "secure" not in cookie
    queue = client.get("/queue")
    assert queue.status_code == 200 and "cam-01" in queue.text and "dep-1" in queue.text
    assert "subj-1" not in queue.text  # the queue names no subject before review


def test_secure_cookies_behind_tls(console):
    world, app, ev, _ = console
    secure = create_app(ConsoleConfig(world.store, world.audit, world.cr, secure_cookies=True, clock=world.clock))
    client = TestClient(secure, follow_redirects=False, base_url="https://testserver")
    page = client.get("/login")
    assert "secure" in page.headers["set-cookie"].lower() and "strict-transport-security" in page.headers


def test_review_and_decision_are_audited_with_the_operator(console):
    world, app, ev, log = console
    adam = login(app, "adam")
    page = adam.get(f"/alerts/{ev.event_id}")
    assert page.status_code == 200 and "subj-1" in page.text and "0.6400" in page.text and "dep-1" in page.text
    assert adam.get(f"/alerts/{ev.event_id}/crop.jpg").content == JPEG
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    response = adam.post(f"/alerts/{ev.event_id}/adjudicate", data={"csrf": csrf, "decision": "confirmed", "reason": "tattoo and face match", "engaged": "yes"})
    assert response.status_code == 303
    assert world.store.alert(ev.event_id).status == "confirmed"
    assert world.store.adjudications(ev.event_id)[0]["reviewer"] == "adam"
    kinds = [(r["kind"], r["actor"], r["details"].get("via")) for r in audit_records(log)]
    assert ("login_succeeded", "operator:adam", None) in kinds
    assert ("alert_viewed", "operator:adam", "console") in kinds and ("alert_viewed", "operator:adam", "console:crop") in kinds
    assert ("adjudication_recorded", "operator:adam", None) in kinds
    # A second decision is refused, and not recorded.
    adam.post(f"/alerts/{ev.event_id}/adjudicate", data={"csrf": csrf, "decision": "rejected", "reason": "second thoughts"})
    assert [a["decision"] for a in world.store.adjudications(ev.event_id)] == ["confirmed"]


def test_a_viewer_cannot_adjudicate_and_forged_or_csrf_less_requests_are_refused(console):
    world, app, ev, _ = console
    vera = login(app, "vera")
    page = vera.get(f"/alerts/{ev.event_id}")
    assert page.status_code == 200 and 'id="decide"' not in page.text and "may view alerts but not record decisions" in page.text
    csrf = csrf_of(vera)
    form = {"csrf": csrf, "decision": "rejected", "reason": "not the same person"}
    assert vera.post(f"/alerts/{ev.event_id}/adjudicate", data=form).status_code == 403
    adam = login(app, "adam")
    assert adam.post(f"/alerts/{ev.event_id}/adjudicate", data={k: v for k, v in form.items() if k != "csrf"}).status_code == 403
    assert adam.post(f"/alerts/{ev.event_id}/adjudicate", data={**form, "csrf": csrf}).status_code == 403  # another session's token
    forged = TestClient(app, follow_redirects=False, cookies={"ea_session": "forged-" + "A" * 40})
    assert forged.get("/queue").headers["location"] == "/login"
    assert forged.post(f"/alerts/{ev.event_id}/adjudicate", data=form).status_code == 403
    assert adam.post("/retention/purge", data={"csrf": csrf_of(adam), "retention_days": "1"}).status_code == 403  # supervisors only
    assert world.store.alert(ev.event_id).status == "pending_review"


def test_logins_are_throttled_and_sessions_expire(console):
    world, app, ev, log = console
    for _ in range(5):
        assert login(app, "adam", "wrong password!!").get("/queue").headers["location"] == "/login"
    throttled = login(app, "adam")  # the right password, too soon after five failures
    assert throttled.get("/queue").headers["location"] == "/login"
    failures = [r for r in audit_records(log) if r["kind"] == "login_failed"]
    assert len(failures) == 6 and failures[-1]["details"]["reason"] == "too many failed logins"
    world.clock.now += LoginPolicy().failure_window + timedelta(seconds=1)
    adam = login(app, "adam")
    assert adam.get("/queue").status_code == 200
    world.clock.now += LoginPolicy().idle + timedelta(seconds=1)
    assert adam.get("/queue").headers["location"] == "/login"  # idle too long


def test_a_supervisor_holds_purges_and_manages_accounts(console):
    world, app, ev, log = console
    suki = login(app, "suki")
    csrf = csrf_of(suki)
    assert suki.post(f"/alerts/{ev.event_id}/hold", data={"csrf": csrf, "reason": "case 23/1"}).status_code == 303
    assert world.store.alert(ev.event_id).hold_reason == "case 23/1"
    suki.post(f"/alerts/{ev.event_id}/hold", data={"csrf": csrf, "reason": "overwrite?"})
    assert world.store.alert(ev.event_id).hold_reason == "case 23/1"
    world.clock.now = T0 + timedelta(days=3)
    suki = login(app, "suki")
    csrf = csrf_of(suki)
    assert suki.post("/retention/purge", data={"csrf": csrf, "retention_days": "1"}).status_code == 303
    assert world.store.alert(ev.event_id).status == "pending_review"  # held: kept
    assert "case 23/1" in suki.get("/retention").text
    assert suki.post("/accounts/create", data={"csrf": csrf, "username": "newbie", "role": "viewer", "password": "a long enough password"}).status_code == 303
    assert suki.post("/accounts/disable", data={"csrf": csrf, "username": "vera"}).status_code == 303
    assert login(app, "vera").get("/queue").headers["location"] == "/login"
    kinds = [r["kind"] for r in audit_records(log)]
    assert kinds.count("legal_hold_placed") == 1 and "alerts_deleted_retention" in kinds and kinds.count("account_changed") == 2
