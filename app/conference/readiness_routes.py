"""Conference room: the pages of readiness, the "today" page (every meeting of today with each site's go / no-go)
and its JSON, which the page polls to update itself in place. Thin views: app.conference.readiness reads."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, render_template
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user

from app.auth.models import Role
from app.conference import readiness
from app.db import db
from app.sites.scope import request_scope
from app.web.access import login_required_only

bp = Blueprint("readiness", __name__)


def _rows() -> list[readiness.OccurrenceRow]:
    # Site staff see their own site's rows only; staff see every site.
    site_id = current_user.site_id if current_user.role is Role.SITE_STAFF else None
    return readiness.today(db.session, site_id, scope=request_scope())


def _label(status: str) -> str:
    return {"ready": _("Go"), "not_ready": _("No go"), "unknown": _("Unknown")}.get(status, _("Not checked yet"))


@bp.route("/today")
@login_required_only
def today_page() -> ResponseReturnValue:
    return render_template("conference/today.html", occurrences=_rows())


@bp.route("/today.json")
@login_required_only
def today_json() -> ResponseReturnValue:
    def site(s: readiness.SiteRow) -> dict[str, Any]:
        return {"code": s.code, "name": s.name, "status": s.status, "status_label": _label(s.status),
                "reason": s.reason, "action": s.action,
                "checked_at": s.checked_at.isoformat() if s.checked_at else None}

    return jsonify({"occurrences": [
        {"occurrence_id": o.occurrence_id, "meeting_id": o.meeting_id, "title": o.title,
         "starts_at": o.starts_at.isoformat(), "ends_at": o.ends_at.isoformat(), "sites": [site(s) for s in o.sites]}
        for o in _rows()]})
