"""Meeting pages (HTML): booking, the calendar, a meeting's page. (Filled in by the meetings pages work.)"""

from __future__ import annotations

from flask import Blueprint
from flask.typing import ResponseReturnValue

from app.auth.permissions import login_required_only

bp = Blueprint("meetings", __name__, url_prefix="/meetings")


@bp.get("/")
@login_required_only
def meeting_list() -> ResponseReturnValue:
    return "meetings"


@bp.get("/calendar")
@login_required_only
def calendar_view() -> ResponseReturnValue:
    return "calendar"
