"""VCOps: meetings, equipment and links of a province's video-conference network.

The factory is where the domains are put together, and (with app.cli, for commands) the only place: the
shared layers (config, db, errors, extensions, web, queue, storage) never import a domain, and a domain never
imports the factory or the CLI. Below, in one place each: every domain's models, its pages and API, the work
it hands to the queue (outbox handlers by name) and its periodic work.

Domains, lowest first (each may import those before it, never one after):
auth < sites < devices < meetings < agenda < calendar < provisioning < monitoring < conference < reports.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask

from app.config import PROJECT_ROOT, load_config


def load_models() -> None:
    """Every domain's models, so that the metadata (Alembic, tests) knows all tables and relationships resolve."""
    import app.agenda.models
    import app.auth.models
    import app.calendar.models
    import app.conference.models
    import app.conference.readiness
    import app.devices.models
    import app.meetings.models
    import app.monitoring.models
    import app.provisioning.backups.models
    import app.provisioning.credentials.models
    import app.provisioning.firmware.models
    import app.provisioning.guard.models
    import app.provisioning.models
    import app.provisioning.schedules.models
    import app.queue.models
    import app.reports.models
    import app.sites.models  # noqa: F401


def outbox_handlers() -> dict[str, Any]:
    """The work a transaction may ask for (`outbox.enqueue(session, name, ...)`), by name."""
    from app.calendar.invitations import send_invitations
    from app.conference.readiness import check_occurrence, mail_not_ready
    from app.conference.service import run_sync as sync_conference
    from app.devices.service import run_quick_action
    from app.provisioning.runner.run import run_job
    from app.reports.monthly import build_stored, mail_report

    return {
        "calendar.send_invitations": send_invitations,
        "conference.sync": sync_conference,
        "devices.quick_action": run_quick_action,
        "jobs.run": run_job,
        "readiness.check": check_occurrence,
        "readiness.mail": mail_not_ready,
        "reports.build": build_stored,
        "reports.mail": mail_report,
    }


def periodic_tasks() -> list[tuple[str, Any, Any]]:
    """The domains' periodic work: (name, huey schedule, function run in the app's context)."""
    from huey import crontab

    from app.agenda.service import sweep_orphan_files
    from app.conference.readiness import start_due_checks
    from app.conference.service import queue_due as queue_due_conferences
    from app.conference.service import reconcile_periodically as reconcile_conferences
    from app.meetings.service import advance_lifecycle
    from app.provisioning.runner.reaper import reap_lost
    from app.provisioning.schedules.service import run_in_worker as run_due_schedules
    from app.queue.tasks import in_transaction
    from app.reports.monthly import monthly_due

    return [
        # scheduled occurrences become in progress at their start and completed at their end
        ("advance_meetings", crontab(minute="*"), in_transaction(advance_lifecycle)),
        # conferences whose retry or lead time is due, and those of meetings over or cancelled, to the queue
        ("sync_conferences", crontab(minute="*"), in_transaction(queue_due_conferences)),
        # each trusted bridge against the bookings: unknown conferences recorded, missing ones made again
        ("reconcile_conferences", crontab(minute="*/15"), reconcile_conferences),
        # document files no row names (a crash between writing and committing)
        ("sweep_document_files", crontab(minute="17", hour="2"), in_transaction(sweep_orphan_files)),
        # jobs whose worker died: running ones after their process group is ended, and claimed ones never started
        ("reap_lost_jobs", crontab(minute="*"), in_transaction(reap_lost)),
        # scheduled job templates that are due, each once whichever worker gets there first
        ("run_job_schedules", crontab(minute="*"), run_due_schedules),
        # last month's report, from its hour on the first working day of the month (once: its key is unique)
        ("monthly_report", crontab(minute="*/10"), in_transaction(monthly_due)),
        # each site's T-60 test session at its occurrence's setup start, again at T-15 for the sites not ready
        ("readiness_checks", crontab(minute="*"), in_transaction(start_due_checks)),
    ]


def register_blueprints(app: Flask) -> None:
    from app.agenda import api as agenda_api
    from app.agenda import routes as agenda_routes
    from app.auth import routes as auth_routes
    from app.calendar import api as calendar_api
    from app.calendar import routes as calendar_routes
    from app.conference import readiness_routes
    from app.conference import routes as conference_routes
    from app.devices import routes as devices_routes
    from app.meetings import api as meetings_api
    from app.meetings import routes as meetings_routes
    from app.monitoring import api as monitoring_api
    from app.monitoring import routes as monitoring_routes
    from app.provisioning import api as jobs_api
    from app.provisioning import routes as jobs_routes
    from app.provisioning.backups.routes import bp as backups_bp
    from app.provisioning.firmware.routes import bp as firmware_bp
    from app.provisioning.guard.routes import bp as guard_bp
    from app.provisioning.schedules.routes import bp as schedules_bp
    from app.reports import api as reports_api
    from app.reports import routes as reports_routes
    from app.sites import api as sites_api
    from app.sites import routes as sites_routes
    from app.web import health, metrics
    from app.web.cycle import register_api

    for blueprint in (health.bp, auth_routes.bp, sites_routes.bp, meetings_routes.bp, calendar_routes.bp,
                      agenda_routes.bp, jobs_routes.bp, schedules_bp, backups_bp, firmware_bp, guard_bp,
                      devices_routes.bp, monitoring_routes.bp, conference_routes.bp, readiness_routes.bp,
                      reports_routes.bp, metrics.bp):
        app.register_blueprint(blueprint)
    register_api(app, [*sites_api.blueprints, *meetings_api.blueprints, *agenda_api.blueprints,
                       *calendar_api.blueprints, *jobs_api.blueprints, *monitoring_api.blueprints,
                       *reports_api.blueprints])


def connect_domains() -> None:
    """What one domain tells another without importing it: the signals of the lower ones, received above."""
    from app.calendar import invitations
    from app.conference import metrics as conference_metrics
    from app.conference import readiness
    from app.conference import service as conferences
    from app.devices.bridges.service import set_bridge_credential_source
    from app.devices.service import set_credential_source
    from app.meetings.booking import meetings_over_maintenance
    from app.monitoring import at_risk
    from app.provisioning.credentials.service import credential_for_device, credential_for_endpoint
    from app.sites.maintenance import set_overlap_source

    invitations.connect()
    # meetings at risk count the sites not ready at their test session and the conferences not ready
    at_risk.add_risk_source(readiness.risks_for)
    readiness.connect()  # each site's go / no-go on the meeting's page
    # a technician making maintenance is told of the booked meetings it overlaps (sites cannot import meetings)
    set_overlap_source(meetings_over_maintenance)
    conferences.connect()  # bookings make, change and delete their conferences on the bridges
    conference_metrics.connect()
    # devices log in with the credential store's logins, without importing provisioning (a domain above them)
    set_credential_source(credential_for_endpoint)
    set_bridge_credential_source(credential_for_device)


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app: settings, extensions, the request cycle, the domains, the access check, the queue."""
    settings = load_config(config)
    app = Flask(
        __name__,
        instance_path=str(settings["INSTANCE_PATH"]),
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder="static",
    )
    app.config.update(settings)
    logging.basicConfig(level=app.config["LOG_LEVEL"], format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from app.auth import access, audit
    from app.db import db
    from app.queue import outbox
    from app.queue.tasks import TASK_CONTEXT, configure_queue, register_periodic
    from app.web import converters, cycle, metrics

    if app.config["PROXY_COUNT"]:
        from werkzeug.middleware.proxy_fix import ProxyFix

        n = app.config["PROXY_COUNT"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]
    load_models()
    db.init_app(app)
    audit.install(db.sessionmaker)
    outbox.install(db.sessionmaker)
    outbox.register_handlers(outbox_handlers())
    connect_domains()
    converters.init_app(app)  # ids in addresses are bounded before any rule is added
    cycle.init_app(app)  # first: a request's write intent is set before anything reads the database
    access.init_app(app)  # then who is asking, and whether they may, before any view
    register_blueprints(app)
    access.check_rules(app)
    metrics.init_app(app)
    for name, schedule, work in periodic_tasks():
        register_periodic(name, schedule, work)
    app.extensions[TASK_CONTEXT] = lambda: audit.acting_as("worker")  # the audit log names the worker
    configure_queue(app)
    return app
