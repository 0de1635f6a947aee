"""Monitoring room: the operators' pages, the live board, a link's history, incidents and their acknowledgement,
meetings at risk.

Thin views: parse the query, call app.monitoring.board, .at_risk or .incidents, render. The board page polls
board.json every few seconds and swaps in the rows that changed (app/static/monitoring.js): the rows are
rendered by the same macro as the page's, so the page and its updates cannot disagree.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import (
    Blueprint,
    current_app,
    flash,
    get_template_attribute,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import format_decimal
from flask_babel import gettext as _
from flask_login import current_user

from app.db import db, utcnow
from app.errors import DomainError
from app.monitoring import at_risk as risk
from app.monitoring import board as states
from app.monitoring import charts, incidents
from app.monitoring.board import STATE_LABELS, SiteState
from app.sites.scope import request_scope
from app.web.access import require
from app.web.pagination import paginate_request

bp = Blueprint("monitoring", __name__, url_prefix="/monitoring")
POLL_SECONDS = 5  # how often the board asks for fresh states: well within a probe step (60 s)
SPARK_WIDTH, SPARK_HEIGHT = 120, 24
CHART_WIDTH, CHART_HEIGHT = 720, 90


def _thresholds() -> states.Thresholds:
    return states.Thresholds.from_config(current_app.config)


# ---------------------------------------------------------------- presentation helpers for the templates

@bp.app_template_filter("mon_ms")
def milliseconds(seconds: float | None, digits: int = 1) -> str:
    """Seconds as milliseconds, in the reader's number format; a dash when there is no figure."""
    if seconds is None:
        return "—"
    return _("%(value)s ms", value=format_decimal(round(seconds * 1000, digits),
                                                   format="#,##0." + "0" * digits if digits else "#,##0"))


@bp.app_template_filter("mon_percent")
def percent(ratio: float | None) -> str:
    if ratio is None:
        return "—"
    return _("%(value)s %%", value=format_decimal(round(ratio * 100, 1), format="#,##0.0"))


@bp.app_template_filter("site_state_label")
def state_label(state: SiteState | str) -> str:
    return str(STATE_LABELS.get(SiteState(state), state))


@bp.app_template_global("mon_sparkline")
def sparkline(site: states.SiteStatus, end: dt.datetime) -> charts.Series:
    t = _thresholds()
    stop = charts.floor_time(end, t.step_seconds) + dt.timedelta(seconds=t.step_seconds)
    return charts.series(site.history, start=stop - dt.timedelta(minutes=states.SPARKLINE_MINUTES), end=stop,
                         width=SPARK_WIDTH, height=SPARK_HEIGHT, floor=0.05, limit=t.rtt_seconds)


# ---------------------------------------------------------------- the board

def _board_args() -> tuple[str, str]:
    state = request.args.get("state", "")
    # A hand-edited state is no error: no filter. A site code that does not exist is (404, naming it).
    return request.args.get("under", "").strip(), state if state in {s.value for s in SiteState} else ""


def _at_risk() -> list[risk.MeetingAtRisk]:
    return risk.meetings_at_risk(db.session, thresholds=_thresholds(), scope=request_scope())


@bp.get("/board")
@require("monitoring.view")
def board() -> ResponseReturnValue:
    under, state = _board_args()
    b = states.board(db.session, under=under, state=state, thresholds=_thresholds(), scope=request_scope())
    return render_template("monitoring/board.html", board=b, under=under, state=state, states=list(SiteState),
                           parents=states.board_filter_sites(db.session, request_scope()), at_risk=_at_risk(),
                           open_incidents=incidents.open_incident_count(db.session, request_scope()),
                           poll_ms=POLL_SECONDS * 1000, thresholds=_thresholds(),
                           data_url=url_for(".board_json", **{k: v for k, v in (("under", under), ("state", state))
                                                               if v}))


@bp.get("/board.json")
@require("monitoring.view")
def board_json() -> ResponseReturnValue:
    """What the board page polls: each row as the page renders it, the counts, the meetings at risk. Between
    two probe steps nothing changes, and the browser's revalidation (ETag) gets a bodiless 304."""
    under, state = _board_args()
    b = states.board(db.session, under=under, state=state, thresholds=_thresholds(), scope=request_scope())
    row = get_template_attribute("monitoring/_board.html", "site_row")
    panel = get_template_attribute("monitoring/_board.html", "at_risk_panel")
    response = jsonify({
        "summary": {s.value: n for s, n in b.summary.items()},
        "rows": [{"code": s.code, "state": s.state.value, "html": str(row(s, b.generated_at))} for s in b.sites],
        "at_risk_html": str(panel(_at_risk())),
        "open_incidents": incidents.open_incident_count(db.session, request_scope()),
    })
    response.add_etag()
    response.headers["Cache-Control"] = "private, no-cache"
    return response.make_conditional(request)


@bp.get("/links/<code>")
@require("monitoring.view")
def link_page(code: str) -> ResponseReturnValue:
    t = _thresholds()
    detail = states.link_detail(db.session, code, thresholds=t,
                                 history_minutes=current_app.config["PROBE_HISTORY_MINUTES"], scope=request_scope())
    end = charts.floor_time(utcnow(), t.step_seconds) + dt.timedelta(seconds=t.step_seconds)
    rows = detail.samples
    common: dict[str, Any] = {"start": detail.since, "end": end, "width": CHART_WIDTH, "height": CHART_HEIGHT}
    panels = {
        "rtt": charts.series(charts.pick(rows, lambda r: r.rtt_median if r.up else None), floor=0.05,
                             limit=t.rtt_seconds, spread=[(r.rtt_min, r.rtt_max) for r in rows], **common),
        "loss": charts.ratio_bars(charts.pick(rows, lambda r: r.loss_ratio), step_seconds=t.step_seconds,
                                  limit=t.loss_ratio, **common),
        "jitter": charts.series(charts.pick(rows, lambda r: r.jitter if r.up else None), floor=0.01,
                                limit=t.jitter_seconds, **common),
    }
    return render_template("monitoring/link.html", d=detail, panels=panels, start=detail.since, end=end,
                           thresholds=t, minutes=current_app.config["PROBE_HISTORY_MINUTES"])


# ---------------------------------------------------------------- incidents

@bp.get("/incidents")
@require("monitoring.view")
def incident_list() -> ResponseReturnValue:
    status = request.args.get("status", "open")
    status = status if status in incidents.INCIDENT_FILTERS else "open"
    site = request.args.get("site", "").strip()
    page = paginate_request(incidents.incident_query(status, site, request_scope()))
    return render_template("monitoring/incidents.html", page=page, status=status, site=site,
                           sites=incidents.incident_sites(db.session, request_scope()))


@bp.get("/incidents/<int:incident_id>")
@require("monitoring.view")
def incident_detail(incident_id: int) -> ResponseReturnValue:
    return render_template("monitoring/incident.html", incident=incidents.get_incident(db.session, incident_id,
                                                                                   request_scope()))


@bp.post("/incidents/<int:incident_id>/ack")
@require("incidents.ack")
def incident_ack(incident_id: int) -> ResponseReturnValue:
    incident = incidents.get_incident(db.session, incident_id, request_scope())
    back = request.form.get("next", "")
    # Only back to one of our own pages (a crafted form cannot send the operator elsewhere).
    target = back if back.startswith("/monitoring/") else url_for(".incident_detail", incident_id=incident_id)
    try:
        incidents.acknowledge(db.session, incident, current_user, request.form.get("note", ""))
    except DomainError as error:
        db.session.rollback()
        flash(error.message, "error")
        return redirect(target)
    flash(_("Incident #%(id)s acknowledged.", id=incident_id), "success")
    return redirect(target)


# ---------------------------------------------------------------- meetings at risk

@bp.get("/at-risk")
@require("monitoring.view")
def at_risk() -> ResponseReturnValue:
    # A hand-edited figure is no error: none (or not a number) is the default 3 hours, others are kept to 1..24.
    hours = request.args.get("hours", type=int)
    hours = 3 if hours is None else min(max(hours, 1), 24)
    meetings = risk.meetings_at_risk(db.session, horizon=dt.timedelta(hours=hours), thresholds=_thresholds(),
                                     scope=request_scope())
    return render_template("monitoring/at_risk.html", meetings=meetings, hours=hours)
