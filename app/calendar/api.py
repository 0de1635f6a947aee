"""Calendar room: attendance through the JSON API — POST /api/v1/meetings/participations/<id>/confirm.

Beside the meetings' API under the same prefix (a participation is a meeting's), but the calendar's: the
rule is app.calendar.service's, the one the signed links and the meeting page's button follow.
"""

from __future__ import annotations

from typing import Any

from flask_login import current_user
from flask_smorest import Blueprint

from app.calendar import service
from app.db import db
from app.meetings.models import Participation
from app.meetings.schemas import Empty, ParticipationOut
from app.web.access import require
from app.web.api import ApiBlueprint

attendance = ApiBlueprint("attendance", "Sites confirm that they attend an occurrence of a meeting.",
                          url_prefix="/api/v1/meetings")


@attendance.route("/participations/<int:participation_id>/confirm", methods=["POST"], endpoint="confirm")
@require("meetings.attend")
@attendance.arguments(Empty, required=False)  # no body, or {}: the document says so
@attendance.response(200, ParticipationOut)
@attendance.fails(404, 409, 422)
def confirm_attendance(_data: dict[str, Any], participation_id: int) -> Participation:
    """Confirm that a site attends one occurrence (site staff: their own site only)."""
    return service.confirm_in_app(db.session, current_user, participation_id)


blueprints: list[Blueprint] = [attendance]
