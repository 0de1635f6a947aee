"""Conference room: the operators' page of conferences on the bridges: those not ready for their meeting, and
those found on a bridge that no booking explains."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask.typing import ResponseReturnValue

from app.conference import service
from app.db import db
from app.meetings.queries import seen_from
from app.sites.scope import request_scope
from app.web.access import require

bp = Blueprint("conference", __name__, url_prefix="/conferences")


@bp.get("")
@require("monitoring.view")
def conference_list() -> ResponseReturnValue:
    scope = request_scope()
    not_ready = [c for c in service.not_ready(db.session) if seen_from(db.session, scope, c.meeting)]
    # Conferences nobody booked belong to no meeting, so to no province: the technicians of the whole network see
    # them, a scoped user does not.
    unknown = service.unknown_conferences(db.session) if scope is None else []
    return render_template("conference/list.html", not_ready=not_ready, unknown=unknown)
