"""Every route checks who is asking: each route, with each role and with nobody logged in.

The table below is the access policy, written out by hand; a route that is not in it fails this test,
so no route can be added without deciding who may use it. Routes that take no user are in the table
too, as PUBLIC, each protected by its own check (a signature, a feed token) tested elsewhere.
Object-level rules (site staff see only their own site's meetings) are tested with the meetings.
"""

from __future__ import annotations

import json
import re

import pytest

from app.auth.models import Role

A, S, T, OP, V, SS = (Role.ADMIN, Role.SECRETARIAT, Role.TECHNICIAN, Role.OPERATOR, Role.VIEWER, Role.SITE_STAFF)
STAFF = {A, S, T, OP, V}
ANYONE_LOGGED_IN = STAFF | {SS}
PUBLIC = "public"

INVENTORY_VIEW, INVENTORY_EDIT, MAINTENANCE_EDIT = STAFF, {A, T}, {A, T, OP}
MEETINGS_VIEW, MEETINGS_BOOK, MEETINGS_ATTEND = STAFF, {A, S}, {A, S, SS}
ADMIN_ONLY = {A}
JOBS_VIEW, JOBS_LAUNCH, CREDENTIALS, DEVICES_ACT = {A, T, OP, V}, {A, T}, {A, T}, {A, T}

EXPECTED: dict[str, set[Role] | str] = {
    # no user: each has its own check
    "static GET": PUBLIC, "health.healthz GET": PUBLIC, "api-docs.openapi_json GET": PUBLIC,
    "auth.login GET": PUBLIC, "auth.login POST": PUBLIC, "auth.language GET": PUBLIC,
    "auth.login_code GET": PUBLIC, "auth.login_code POST": PUBLIC,  # only after this session's password step
    "calendar.attendance GET": PUBLIC, "calendar.attendance POST": PUBLIC,  # signed link
    "calendar.feed GET": PUBLIC,  # revocable feed token
    "agenda.signed_download GET": PUBLIC,  # signed, expiring link; never for restricted meetings
    # any logged-in user: their own things, or pages that show only what they may see
    "sites.home GET": ANYONE_LOGGED_IN, "auth.logout POST": ANYONE_LOGGED_IN,
    "auth.profile GET": ANYONE_LOGGED_IN, "auth.profile_language POST": ANYONE_LOGGED_IN,
    "auth.profile_password POST": ANYONE_LOGGED_IN, "auth.token_create POST": ANYONE_LOGGED_IN,
    "auth.token_revoke POST": ANYONE_LOGGED_IN,
    "auth.password_required GET": ANYONE_LOGGED_IN, "auth.password_required POST": ANYONE_LOGGED_IN,
    "auth.two_factor_setup GET": ANYONE_LOGGED_IN, "auth.two_factor_setup POST": ANYONE_LOGGED_IN,
    "auth.two_factor_recovery_codes POST": ANYONE_LOGGED_IN,
    "meetings.meeting_list GET": ANYONE_LOGGED_IN, "meetings.calendar_view GET": ANYONE_LOGGED_IN,
    "meetings.meeting_detail GET": ANYONE_LOGGED_IN,
    # a site's schedule: staff see any site's; site staff only their own (not the site walked here)
    "meetings.site_schedule GET": STAFF,
    "api_meetings.collection GET": ANYONE_LOGGED_IN, "api_meetings.item GET": ANYONE_LOGGED_IN,
    "agenda.agenda_page GET": ANYONE_LOGGED_IN, "agenda.version_page GET": ANYONE_LOGGED_IN,
    "agenda.document_download GET": ANYONE_LOGGED_IN, "api_agenda.agenda GET": ANYONE_LOGGED_IN,
    "api_agenda.version GET": ANYONE_LOGGED_IN, "api_documents.collection GET": ANYONE_LOGGED_IN,
    "api_documents.download GET": ANYONE_LOGGED_IN,
    # administration
    "auth.user_list GET": ADMIN_ONLY, "auth.user_create GET": ADMIN_ONLY, "auth.user_create POST": ADMIN_ONLY,
    "auth.user_edit GET": ADMIN_ONLY, "auth.user_edit POST": ADMIN_ONLY,
    "auth.user_password_reset POST": ADMIN_ONLY, "auth.user_token_revoke POST": ADMIN_ONLY,
    "auth.user_two_factor_off POST": ADMIN_ONLY,
    "auth.audit_log GET": ADMIN_ONLY,
    # meetings
    "meetings.availability GET": MEETINGS_VIEW, "api_meetings.availability POST": MEETINGS_VIEW,
    "meetings.book GET": MEETINGS_BOOK, "meetings.book POST": MEETINGS_BOOK,
    "api_meetings.collection POST": MEETINGS_BOOK,
    "calendar.confirm_attendance POST": MEETINGS_ATTEND, "api_attendance.confirm POST": MEETINGS_ATTEND,
    "calendar.feed_list GET": MEETINGS_BOOK, "calendar.feed_create POST": MEETINGS_BOOK,
    "calendar.feed_revoke POST": MEETINGS_BOOK,
    "calendar.delivery_resend POST": MEETINGS_BOOK, "calendar.deliveries_resend POST": MEETINGS_BOOK,
}
# Every change to a meeting, its agenda or its documents is the secretariat's.
for _endpoint in ("meetings.cancel_meeting", "meetings.cancel_occurrence", "meetings.move_occurrence",
                  "meetings.schedule_draft", "agenda.item_edit"):
    EXPECTED[f"{_endpoint} GET"] = EXPECTED[f"{_endpoint} POST"] = MEETINGS_BOOK
for _endpoint in ("api_meetings.cancel", "api_meetings.cancel_occurrence", "api_meetings.move_occurrence",
                  "api_meetings.schedule", "agenda.document_remove", "agenda.document_replace",
                  "agenda.document_upload", "agenda.item_add", "agenda.item_move", "agenda.item_remove",
                  "agenda.publish", "api_agenda.items", "api_agenda.publish", "api_documents.collection",
                  "api_documents.replace"):
    EXPECTED[f"{_endpoint} POST"] = MEETINGS_BOOK
for _key in ("api_agenda.item PATCH", "api_agenda.item DELETE", "api_documents.item DELETE"):
    EXPECTED[_key] = MEETINGS_BOOK
# The inventory: everyone on the staff reads it; technicians (and admins) change it.
for _kind in ("site", "endpoint", "bridge", "host", "link"):
    EXPECTED[f"sites.{_kind}_list GET"] = EXPECTED[f"sites.{_kind}_detail GET"] = INVENTORY_VIEW
    for _action in ("create", "edit", "retire"):
        EXPECTED[f"sites.{_kind}_{_action} GET"] = EXPECTED[f"sites.{_kind}_{_action} POST"] = INVENTORY_EDIT
    _api = f"api_{_kind}s"
    EXPECTED[f"{_api}.collection GET"] = EXPECTED[f"{_api}.item GET"] = INVENTORY_VIEW
    EXPECTED[f"{_api}.collection POST"] = EXPECTED[f"{_api}.item PATCH"] = INVENTORY_EDIT
    EXPECTED[f"{_api}.retire POST"] = INVENTORY_EDIT
EXPECTED.update({
    "sites.site_tree GET": INVENTORY_VIEW, "api_levels.collection GET": INVENTORY_VIEW,
    "sites.maintenance_list GET": INVENTORY_VIEW, "api_maintenance.collection GET": INVENTORY_VIEW,
    "api_maintenance.item GET": INVENTORY_VIEW,
    # operators plan maintenance windows too
    "sites.maintenance_create GET": MAINTENANCE_EDIT, "sites.maintenance_create POST": MAINTENANCE_EDIT,
    "sites.maintenance_delete GET": MAINTENANCE_EDIT, "sites.maintenance_delete POST": MAINTENANCE_EDIT,
    "api_maintenance.collection POST": MAINTENANCE_EDIT, "api_maintenance.item PATCH": MAINTENANCE_EDIT,
    "api_maintenance.item DELETE": MAINTENANCE_EDIT,
})


# Equipment: operators and viewers follow jobs; technicians launch them, keep the credentials, act on devices.
EXPECTED.update({
    "jobs.job_list GET": JOBS_VIEW, "jobs.job_detail GET": JOBS_VIEW, "jobs.job_events GET": JOBS_VIEW,
    "jobs.template_list GET": JOBS_VIEW, "api_jobs.collection GET": JOBS_VIEW, "api_jobs.item GET": JOBS_VIEW,
    "api_job_events.collection GET": JOBS_VIEW, "api_job-templates.collection GET": JOBS_VIEW,
    "jobs.job_cancel POST": JOBS_LAUNCH, "jobs.job_relaunch POST": JOBS_LAUNCH, "api_jobs.collection POST": JOBS_LAUNCH,
    "api_jobs.cancel POST": JOBS_LAUNCH, "api_jobs.relaunch POST": JOBS_LAUNCH,
    "jobs.credential_list GET": CREDENTIALS, "jobs.assignment_delete POST": CREDENTIALS,
    "devices.endpoint_page GET": DEVICES_ACT, "devices.request_action POST": DEVICES_ACT,
    "devices.action_page GET": DEVICES_ACT, "devices.host_keys GET": DEVICES_ACT,
    "devices.accept_host_key POST": DEVICES_ACT, "devices.forget_host_key POST": DEVICES_ACT,
    "devices.bridge_certificates GET": DEVICES_ACT, "devices.fetch_bridge_certificate POST": DEVICES_ACT,
    "devices.accept_bridge_certificate POST": DEVICES_ACT, "devices.forget_bridge_certificate POST": DEVICES_ACT,
})
EXPECTED["schedules.schedule_list GET"] = JOBS_VIEW
EXPECTED["backups.endpoint_versions GET"] = EXPECTED["backups.show GET"] = JOBS_VIEW
for _key in ("firmware.image_list GET", "firmware.image_show GET", "firmware.image_download GET"):
    EXPECTED[_key] = JOBS_VIEW
EXPECTED["firmware.upload GET"] = EXPECTED["firmware.upload POST"] = JOBS_LAUNCH
# The meeting guard of a template, bridges' backups, the templates' and schedules' API.
EXPECTED["guard.template_guard GET"] = EXPECTED["guard.template_guard POST"] = JOBS_LAUNCH
EXPECTED["backups.index GET"] = EXPECTED["backups.bridge_versions GET"] = JOBS_VIEW
EXPECTED["api_job-templates.item GET"] = JOBS_VIEW
EXPECTED["api_job-templates.item PATCH"] = JOBS_LAUNCH
EXPECTED["api_job-schedules.collection GET"] = EXPECTED["api_job-schedules.item GET"] = JOBS_VIEW
for _key in ("api_job-schedules.collection POST", "api_job-schedules.item PATCH", "api_job-schedules.item DELETE"):
    EXPECTED[_key] = JOBS_LAUNCH

# Monitoring: every staff member sees the board; operators acknowledge incidents; Alertmanager posts with an
# operator's token.
MONITORING_VIEW, INCIDENTS_ACK, MONITORING_RECEIVE = STAFF, {A, OP}, {A, OP}
EXPECTED.update({
    "monitoring.board GET": MONITORING_VIEW, "monitoring.board_json GET": MONITORING_VIEW,
    "monitoring.link_page GET": MONITORING_VIEW, "monitoring.incident_list GET": MONITORING_VIEW,
    "monitoring.incident_detail GET": MONITORING_VIEW, "monitoring.at_risk GET": MONITORING_VIEW,
    "conference.conference_list GET": MONITORING_VIEW,
    # today's go / no-go: staff see every site, site staff their own site's rows (tests/conference/test_readiness.py)
    "readiness.today_page GET": ANYONE_LOGGED_IN, "readiness.today_json GET": ANYONE_LOGGED_IN,
    "monitoring.incident_ack POST": INCIDENTS_ACK,
    "api_board.collection GET": MONITORING_VIEW, "api_link_history.item GET": MONITORING_VIEW,
    "api_at_risk.collection GET": MONITORING_VIEW, "api_incidents.collection GET": MONITORING_VIEW,
    "api_incidents.item GET": MONITORING_VIEW, "api_incidents.ack POST": INCIDENTS_ACK,
    "api_alerts.webhook POST": MONITORING_RECEIVE,
    "webmetrics.metrics GET": PUBLIC,  # Prometheus; answered only to the addresses in METRICS_ALLOW
})
# Reports: every staff member (the figures are not secret); site staff not.
REPORTS_VIEW = STAFF
EXPECTED.update({
    "reports.report_page GET": REPORTS_VIEW, "reports.download GET": REPORTS_VIEW,
    "reports.kept_download GET": REPORTS_VIEW, "reports.kept_request POST": REPORTS_VIEW,
    "api_reports.collection GET": REPORTS_VIEW, "api_report_downloads.collection GET": REPORTS_VIEW,
    "api_stored_reports.collection GET": REPORTS_VIEW, "api_stored_reports.collection POST": REPORTS_VIEW,
    "api_stored_reports.file GET": REPORTS_VIEW,
    "api_report_travel.collection GET": REPORTS_VIEW,
    # the savings' assumptions: the inventory's editors set a site's travel, the secretariat a meeting's headcount
    "api_report_travel.item PUT": INVENTORY_EDIT, "api_report_headcounts.item PUT": MEETINGS_BOOK,
})
EXPECTED["firmware.signed_download GET"] = PUBLIC  # devices fetch images by a signed, expiring link
for _endpoint in ("schedules.schedule_create", "schedules.schedule_edit"):
    EXPECTED[f"{_endpoint} GET"] = EXPECTED[f"{_endpoint} POST"] = JOBS_LAUNCH
for _endpoint in ("schedules.schedule_delete", "schedules.schedule_disable", "schedules.schedule_enable"):
    EXPECTED[f"{_endpoint} POST"] = JOBS_LAUNCH
for _endpoint in ("jobs.template_create", "jobs.template_edit", "jobs.template_launch"):
    EXPECTED[f"{_endpoint} GET"] = EXPECTED[f"{_endpoint} POST"] = JOBS_LAUNCH
for _endpoint in ("jobs.credential_assign", "jobs.credential_create", "jobs.credential_delete",
                  "jobs.credential_edit", "jobs.credential_rotate"):
    EXPECTED[f"{_endpoint} GET"] = EXPECTED[f"{_endpoint} POST"] = CREDENTIALS


def _routes(app) -> list[tuple[str, str, str]]:
    found = []
    for rule in app.url_map.iter_rules():
        # Ids of nothing: the rule is decided before any lookup, and no request changes what the next one finds.
        path = re.sub(r"<(?:(\w+):)?(\w+)>", lambda m: "999999" if m.group(1) == "int" else "x", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            found.append((rule.endpoint, method, path))
    return found


def _denied(response) -> bool:
    if response.status_code in (401, 403):
        return True
    # Sent to log in (with where to come back to); a redirect to /login after logging out is no refusal.
    return response.status_code in (301, 302, 303) and "/login?next=" in response.headers.get("Location", "")


def test_every_route_is_in_the_access_table(app):
    keys = {f"{endpoint} {method}" for endpoint, method, _ in _routes(app)}
    assert sorted(keys - set(EXPECTED)) == [], "routes without a decided rule: add them to EXPECTED"
    assert sorted(set(EXPECTED) - keys) == [], "rules for routes that no longer exist"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # the rules do not depend on the database
def test_every_route_lets_in_exactly_the_roles_it_should(app):
    tokens = app.config["TEST_TOKENS"]
    wrong = []
    for endpoint, method, path in _routes(app):
        expected = EXPECTED.get(f"{endpoint} {method}")
        if expected is None:
            continue  # reported by the test above
        client = app.test_client()
        response = client.open(path, method=method)
        if expected == PUBLIC:
            # No login asked for; a 403 here is the route's own check refusing the made-up signature or token.
            if response.status_code == 401 or _denied(response) and response.status_code != 403:
                wrong.append(f"{method} {path}: public, but anonymous got {response.status_code}")
            continue
        if not _denied(response):
            wrong.append(f"{method} {path}: anonymous got {response.status_code}")
        for role in Role:
            response = client.open(path, method=method, headers={"Authorization": f"Bearer {tokens[role]}"})
            if _denied(response) == (role in expected):
                wrong.append(f"{method} {path}: {role.value} got {response.status_code}")
    assert wrong == []


# ------------------------------------------------------------------ the scope column: a user confined to a subtree

# What a user confined to Tuyên Quang (app/sites/scope.py) gets of another province's objects, route by route. By
# default: a route naming such an object (by one of SCOPED_PARAMS) answers 404, as if it did not exist; a page or a
# collection without one (a GET) lists nothing of it. Changes to what the user sees but may not change (403 naming
# the scope), bookings and jobs naming outside sites are the stories of tests/sites/test_scopes.py. The exceptions:
SCOPED_PARAMS = ("site_id", "endpoint_id", "host_id", "bridge_id", "link_id", "code", "window_id", "meeting_id",
                 "occurrence_id", "participation_id", "job_id", "incident_id", "action_id")
SCOPE_GLOBAL = "shared by every scope"
SCOPE: dict[str, str] = {
    # what lies in no site: the playbooks' templates and schedules, credentials, firmware images, host keys, levels
    **{key: SCOPE_GLOBAL for key in EXPECTED if key.split(".")[0] in {
        "jobs", "api_job-templates", "api_job-schedules", "schedules", "firmware", "guard", "api_levels"}
       and not key.startswith(("jobs.job_", "api_jobs", "api_job_events"))},
    "devices.host_keys GET": "host keys are of addresses, pinned for any site's equipment",
    "auth.user_list GET": "admins manage every user",
    "auth.user_create GET": "an admin gives scopes from the whole tree",
    "auth.user_edit GET": "an admin gives scopes from the whole tree",
    "auth.audit_log GET": "the audit log is the admins'",
    "auth.profile GET": "one's own things",
    "webmetrics.metrics GET": "the app's own metrics, for Prometheus",
    "api-docs.openapi_json GET": "no data",
    "health.healthz GET": "no data",
    "auth.language GET": "no data", "auth.login GET": "no data",
    "meetings.book GET": "the form: its choices are checked by tests/sites/test_scopes.py",
    "meetings.availability GET": "the form: its choices are checked by tests/sites/test_scopes.py",
    "sites.site_create GET": "the form: its choices are checked by tests/sites/test_scopes.py",
    "jobs.job_list GET": "lists jobs by number and template: checked through api_jobs.collection",
    # reports come from another part (issue 12, reports), with their own scope tests
    **{key: "reports: their own tests" for key in EXPECTED if key.split(".")[0] in {"reports", "api_reports"}},
    # bridges' backups and certificates are the devices' (their pages name bridges by their own ids)
    **{key: "bridges' backups and certificates: not walked yet" for key in EXPECTED
       if key.startswith(("backups.", "devices.bridge_certificates", "devices.fetch_bridge_certificate",
                          "devices.accept_bridge_certificate", "devices.forget_bridge_certificate"))},
}


def _shows(response, text: str) -> bool:
    body = response.get_data(as_text=True)
    return text in body or json.dumps(text)[1:-1] in body  # in a page, or in JSON's escapes


def _scoped_path(rule, outside: dict) -> str | None:
    """The rule's address with the other province's objects in place of its parameters; None when it names none."""
    names = set(rule.arguments)
    if not names & set(SCOPED_PARAMS):
        return None
    return re.sub(r"<(?:(\w+):)?(\w+)>", lambda m: str(outside.get(m.group(2), "999999" if m.group(1) == "int"
                                                                   else "x")), rule.rule)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_user_confined_to_tuyen_quang_finds_nothing_of_another_province_on_any_route(app, session):
    from app.db import commit_scope
    from tests.support.scopes import MARK, other_province, scoped_user

    outside = other_province(session)
    tokens = {role: scoped_user(session, role)[1] for role in Role}
    with commit_scope():
        pass
    rules = {f"{r.endpoint} {m}": r for r in app.url_map.iter_rules() for m in r.methods - {"HEAD", "OPTIONS"}}
    wrong, walked = [], 0
    for key, expected in EXPECTED.items():
        if expected == PUBLIC or key in SCOPE or key not in rules:
            continue
        rule, method = rules[key], key.rsplit(" ", 1)[1]
        path = _scoped_path(rule, outside.ids)
        if path is None and (method != "GET" or rule.arguments):
            continue  # a change naming nothing outside: the stories
        for role in expected:
            client = app.test_client()
            response = client.open(path or rule.rule, method=method,
                                   headers={"Authorization": f"Bearer {tokens[role]}"})
            walked += 1
            if path is not None:
                # An API change without a body is refused (422) before any lookup: that tells nothing either.
                told_nothing = {404, 422} if path.startswith("/api/") and method != "GET" else {404}
                if response.status_code not in told_nothing:
                    wrong.append(f"{method} {path}: {role.value} got {response.status_code}, not 404")
            elif response.status_code < 400 and _shows(response, MARK):
                wrong.append(f"{method} {rule.rule}: {role.value} is shown {MARK}")
    assert wrong == [], "\n".join(wrong)
    assert walked > 100


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_the_same_routes_show_the_other_province_to_an_admin_without_a_scope(app, session, api):
    from app.db import commit_scope
    from tests.support.scopes import MARK, other_province

    outside = other_province(session)
    with commit_scope():
        pass
    admin = api(Role.ADMIN)
    assert admin.get(f"/api/v1/sites/{outside.ids['site_id']}").status_code == 200
    assert _shows(admin.get("/api/v1/sites?page_size=100"), MARK)
    assert admin.get(f"/api/v1/meetings/{outside.ids['meeting_id']}").status_code == 200
