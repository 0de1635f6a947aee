"""The audit log: an admin browses who changed what and when, with the values before and after; secrets
never appear in it."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import sqlalchemy as sa

from app.auth.audit import AuditEntry
from app.auth.models import Role, User
from app.db import db


@pytest.fixture
def store(app):
    """The test's database, without an app context left pushed. (The `session` fixture keeps one pushed, so
    every request in the test shares its `g` and Flask-Login's cached user.)"""
    session = db.sessionmaker()
    yield session
    session.close()


def _entries(page):
    """The audit rows of a page, newest first: (what, [(field, before, after), ...])."""
    rows = []
    for chunk in page.split('<tr class="audit-entry"')[1:]:
        what = re.search(r"<td>([^<\n]*·[^<\n]*)", chunk).group(1).strip()
        changes = re.findall(r'<tr><td>([^<]*)</td><td class="before">([^<]*)</td><td class="after">([^<]*)</td>',
                             chunk)
        rows.append((what, changes))
    return rows


def test_admin_sees_who_demoted_a_technician_with_before_and_after(login, store):
    technician = store.scalar(sa.select(User).where(User.email == "technician@example.com"))
    client = login(Role.ADMIN)
    assert client.post(f"/users/{technician.id}", data={"name": "technician", "role": "viewer", "active": "y"}
                       ).status_code == 302
    page = client.get("/audit", query_string={"object_type": "User", "object_id": technician.id,
                                              "action": "update"}).get_data(as_text=True)
    what, changes = _entries(page)[0]
    assert what == f"update · User #{technician.id}"
    assert ("role", "technician", "viewer") in changes
    assert "admin@example.com" in page.split('class="audit-entry"')[1]  # who


def test_audit_log_never_shows_password_hashes_or_token_secrets(login, store):
    viewer = store.scalar(sa.select(User).where(User.email == "viewer@example.com"))
    client = login(Role.ADMIN)
    client.post(f"/users/{viewer.id}/password", data={"password": "mot mat khau moi"})
    created = client.post("/profile/tokens", data={"name": "backup"}).get_data(as_text=True)
    secret = re.search(r'<code id="new-token-secret">([^<]+)</code>', created).group(1)
    store.expire_all()
    password_hash = store.scalar(sa.select(User.password_hash).where(User.id == viewer.id))

    page = client.get("/audit").get_data(as_text=True)
    assert "password_reset · User" in page and "token_create · ApiToken" in page
    assert secret not in page and password_hash not in page
    assert "$argon2" not in page and "token_hash" not in page and "password_hash" not in page
    stored = " ".join(str((e.before, e.after, e.summary)) for e in store.scalars(sa.select(AuditEntry)))
    assert secret not in stored and "$argon2" not in stored


def _add_entries(store, count, start, step=dt.timedelta(minutes=1)):
    store.add_all(AuditEntry(at=start + i * step, actor="cli", action="update", object_type="Probe",
                             object_id=str(i), summary=f"probe step {i}") for i in range(count))
    store.commit()


def test_audit_log_lists_newest_first_page_by_page(login, store, app):
    size = app.config["PAGE_SIZE"]
    _add_entries(store, size + 1, dt.datetime(2025, 3, 1, tzinfo=dt.UTC))
    client = login(Role.ADMIN)
    first = client.get("/audit", query_string={"object_type": "Probe"}).get_data(as_text=True)
    assert [w for w, _ in _entries(first)][:2] == [f"update · Probe #{size}", f"update · Probe #{size - 1}"]
    assert len(_entries(first)) == size and 'rel="next"' in first
    second = client.get("/audit", query_string={"object_type": "Probe", "page": 2}).get_data(as_text=True)
    assert [w for w, _ in _entries(second)] == ["update · Probe #0"] and 'rel="next"' not in second


def test_audit_dates_are_whole_days_in_local_time(login, store):
    # 17:30 UTC on 1 March is 00:30 on 2 March in Hà Nội (UTC+7).
    _add_entries(store, 1, dt.datetime(2025, 3, 1, 17, 30, tzinfo=dt.UTC))
    client = login(Role.ADMIN)

    def shown(since, until):
        page = client.get("/audit", query_string={"object_type": "Probe", "since": since, "until": until})
        return [w for w, _ in _entries(page.get_data(as_text=True))]

    assert shown("2025-03-02", "2025-03-02") == ["update · Probe #0"]
    assert shown("2025-03-01", "2025-03-01") == []
    page = client.get("/audit", query_string={"object_type": "Probe"}).get_data(as_text=True)
    assert "00:30" in page  # shown in local time


def test_audit_filter_refuses_a_range_that_ends_before_it_starts(login):
    response = login(Role.ADMIN).get("/audit", query_string={"since": "2025-03-02", "until": "2025-03-01"})
    assert response.status_code == 422
    assert 'data-field="until">The end date is before the start date.<' in response.get_data(as_text=True)


def test_audit_filters_by_who(login, store):
    _add_entries(store, 1, dt.datetime(2025, 3, 1, tzinfo=dt.UTC))
    client = login(Role.ADMIN)
    page = client.get("/audit", query_string={"object_type": "Probe", "actor": "admin@"}).get_data(as_text=True)
    assert _entries(page) == []
    page = client.get("/audit", query_string={"object_type": "Probe", "actor": "CLI"}).get_data(as_text=True)
    assert len(_entries(page)) == 1


def test_only_admins_read_the_audit_log(api):
    for role in (Role.TECHNICIAN, Role.SECRETARIAT, Role.OPERATOR, Role.VIEWER, Role.SITE_STAFF):
        assert api(role).get("/audit").status_code == 403, role
    assert api(Role.ADMIN).get("/audit").status_code == 200
