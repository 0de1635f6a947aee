"""GET /healthz: the database, the task queue, and how long since a worker last checked in."""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, current_app, jsonify
from flask.typing import ResponseReturnValue

from app.db import db, utcnow
from app.queue.tasks import huey, last_check_in, queue_backend
from app.web.access import public

bp = Blueprint("health", __name__)
log = logging.getLogger(__name__)


def check_health() -> tuple[bool, dict[str, Any]]:
    checks: dict[str, Any] = {}
    healthy = True
    try:
        db.session.execute(sa.text("SELECT 1"))
        checks["database"] = {"ok": True, "backend": db.session.get_bind().dialect.name}
    except Exception as exc:  # report, never raise: this page exists to say what is wrong
        healthy = False
        checks["database"] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    try:
        pending = huey.pending_count()
        checks["queue"] = {"ok": True, "backend": queue_backend(), "pending": pending}
    except Exception as exc:
        healthy = False
        checks["queue"] = {"ok": False, "backend": queue_backend(), "error": f"{type(exc).__name__}: {exc}"[:300]}
    stale = current_app.config["WORKER_STALE_SECONDS"]
    try:
        seen = last_check_in() if checks["database"]["ok"] else None
    except Exception:
        seen = None
    if seen is None:
        healthy = False
        checks["worker"] = {"ok": False, "error": "no worker has checked in"}
    else:
        age = (utcnow() - seen).total_seconds()
        ok = age <= stale
        healthy &= ok
        checks["worker"] = {"ok": ok, "last_check_in_seconds_ago": round(age, 1)}
        if not ok:
            checks["worker"]["error"] = f"no worker has checked in for {int(age)} s (limit {stale} s)"
    return healthy, checks


# app.extensions[DETAIL_VIEWER]: a callable telling whether the request comes from an operator who may read the
# checks' details. The auth domain installs it (app.auth.access); this shared layer cannot import a domain.
DETAIL_VIEWER = "vcops_health_detail_viewer"
# What anyone may see of a check: its state, and the backend's kind (no address, no error, no counts).
PUBLIC_FIELDS = ("ok", "backend")


def _may_see_details() -> bool:
    viewer = current_app.extensions.get(DETAIL_VIEWER)
    return bool(viewer is not None and viewer())


@bp.get("/healthz")
@public("health checks by load balancers and monitoring; anonymous callers see each check's state only, "
        "operators (monitoring.view, by session or API token) also what is wrong")
def healthz() -> ResponseReturnValue:
    healthy, checks = check_health()
    failing = {name: c["error"] for name, c in checks.items() if not c["ok"]}
    for name, error in failing.items():
        # The details (a database error names its host and port) go to the log, where operators read them.
        log.warning("health check %s failed: %s", name, error)
    if _may_see_details():
        problems = [f"{name}: {error}" for name, error in failing.items()]
    else:
        checks = {name: {k: v for k, v in c.items() if k in PUBLIC_FIELDS} for name, c in checks.items()}
        problems = list(failing)
    body = {"status": "ok" if healthy else "unhealthy", "checks": checks, "problems": problems}
    return jsonify(body), 200 if healthy else 503
