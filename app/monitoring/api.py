"""Monitoring room: the JSON API under /api/v1, the board, a link's history, the meetings at risk, incidents, and the
webhook Alertmanager posts its notifications to.

Thin views as in app.sites.api: the schemas parse, app.monitoring.board and .at_risk read,
app.monitoring.incidents reads and records, the request's commit point commits. Alertmanager authenticates with
the bearer token of a user holding monitoring.receive (`http_config.authorization` in alertmanager.yml); a
payload it cannot have meant is a 400 naming the field.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import current_app
from flask.views import MethodView
from flask_login import current_user
from flask_smorest import Blueprint

from app.db import db
from app.monitoring import at_risk as risk
from app.monitoring import board as states
from app.monitoring import incidents, schemas
from app.monitoring.models import Incident
from app.sites.scope import request_scope
from app.web.access import require
from app.web.api import ApiBlueprint
from app.web.pagination import paginate

Args = dict[str, Any]


def _thresholds() -> states.Thresholds:
    return states.Thresholds.from_config(current_app.config)


board = ApiBlueprint("board", "The operators' board: every site's state from the latest probe results.",
                     url_prefix="/api/v1/monitoring/board")
link_history = ApiBlueprint("link_history", "A link's latest state, its kept history and its incidents.",
                            url_prefix="/api/v1/monitoring/links")
at_risk = ApiBlueprint("at_risk", "Meetings in progress or starting soon with a failing site.",
                       url_prefix="/api/v1/monitoring/at-risk")
incident_api = ApiBlueprint("incidents", "Incidents raised by Alertmanager, and their acknowledgement.")
alerts = ApiBlueprint("alerts", "Alertmanager's webhook receiver.")


@board.route("", endpoint="collection")
class BoardView(MethodView):
    @require("monitoring.view")
    @board.arguments(schemas.BoardQuery, location="query")
    @board.response(200, schemas.BoardOut)
    @board.fails(404, 422)
    def get(self, args: Args) -> states.Board:
        """Every active site in tree order with its state, uplink figures and rooms; `under` a site's subtree,
        `state` one state."""
        return states.board(db.session, under=args["under"], state=args["state"], thresholds=_thresholds(),
                             history=False, scope=request_scope())


@link_history.route("/<code>", endpoint="item")
class LinkHistoryView(MethodView):
    @require("monitoring.view")
    @link_history.response(200, schemas.LinkHistoryOut)
    @link_history.fails(404)
    def get(self, code: str) -> states.LinkDetail:
        """A link's latest state, its samples over the kept history (PROBE_HISTORY_MINUTES) and its incidents."""
        return states.link_detail(db.session, code, thresholds=_thresholds(),
                                   history_minutes=current_app.config["PROBE_HISTORY_MINUTES"],
                                   scope=request_scope())


@at_risk.route("", endpoint="collection")
class AtRiskView(MethodView):
    @require("monitoring.view")
    @at_risk.arguments(schemas.AtRiskQuery, location="query")
    @at_risk.response(200, schemas.AtRiskOut)
    @at_risk.fails(422)
    def get(self, args: Args) -> Args:
        """Meetings in progress or starting within `hours` whose sites are failing, with each site and why."""
        return {"meetings": risk.meetings_at_risk(db.session, horizon=dt.timedelta(hours=args["hours"]),
                                                     thresholds=_thresholds(), scope=request_scope())}


@incident_api.route("", endpoint="collection")
class IncidentCollection(MethodView):
    @require("monitoring.view")
    @incident_api.arguments(schemas.IncidentQuery, location="query")
    @incident_api.response(200, schemas.IncidentPage)
    @incident_api.fails(422)
    def get(self, args: Args) -> Args:
        """Incidents, newest first: open (firing, the default), resolved or all; of one site."""
        stmt = incidents.incident_query(args["status"], args["site"], request_scope())
        return paginate(stmt, args["page"], args["page_size"]).as_api()


@incident_api.route("/<int:incident_id>", endpoint="item")
class IncidentItem(MethodView):
    @require("monitoring.view")
    @incident_api.response(200, schemas.IncidentOut)
    @incident_api.fails(404)
    def get(self, incident_id: int) -> Incident:
        """An incident with its labels and annotations as Alertmanager sent them."""
        return incidents.get_incident(db.session, incident_id, request_scope())


@incident_api.route("/<int:incident_id>/ack", methods=["POST"], endpoint="ack")
@require("incidents.ack")
@incident_api.arguments(schemas.Acknowledge)
@incident_api.response(200, schemas.IncidentOut)
@incident_api.fails(404, 409, 422)
def acknowledge(data: Args, incident_id: int) -> Incident:
    """Take the incident on, with an optional note; who and when are kept (409 when already acknowledged)."""
    return incidents.acknowledge(db.session, incidents.get_incident(db.session, incident_id, request_scope()),
                                 current_user,
                                 data["note"])


@alerts.route("/webhook", methods=["POST"], endpoint="webhook")
@require("monitoring.receive")
@alerts.arguments(schemas.AlertmanagerPayload, error_status_code=400)
@alerts.response(200, schemas.Ingested)
@alerts.fails(400)
def webhook(payload: Args) -> Args:
    """Alertmanager's webhook (payload version 4): each alert becomes or updates an incident, keyed by
    fingerprint and startsAt; posting the same notification again changes nothing."""
    return incidents.ingest(db.session, payload).as_dict()


blueprints: list[Blueprint] = [board, link_history, at_risk, incident_api, alerts]
