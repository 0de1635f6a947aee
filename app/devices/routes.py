"""Device pages: an endpoint's quick actions and their results, and the host keys and bridge certificates waiting
for a technician.

Thin views: a quick action is queued (the worker talks to the device) and the page polls its row; nothing here
opens an SSH connection. A client asking for JSON gets 202 with the action's address, then its state.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, flash, jsonify, make_response, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user

from app.db import db
from app.devices import certificates, hostkeys, service
from app.devices.bridges import service as bridges
from app.devices.bridges.base import BridgeError
from app.devices.models import ActionKind, CertificateState, DeviceAction
from app.errors import DomainError
from app.extensions import wants_json
from app.sites import scope as scopes
from app.sites.models import Bridge, Endpoint, Status
from app.sites.scope import request_scope
from app.web.access import require

bp = Blueprint("devices", __name__, url_prefix="/devices")

POLL_SECONDS = 2


def action_json(action: DeviceAction) -> dict[str, Any]:
    return {
        "id": action.id, "endpoint_id": action.endpoint_id, "action": action.action.value,
        "state": action.state.value, "result": action.result, "error": action.error,
        "created_at": action.created_at.isoformat(),
        "started_at": action.started_at.isoformat() if action.started_at else None,
        "finished_at": action.finished_at.isoformat() if action.finished_at else None,
        "url": url_for("devices.action_page", action_id=action.id),
    }


@bp.get("/endpoints/<int:endpoint_id>")
@require("devices.act")
def endpoint_page(endpoint_id: int) -> ResponseReturnValue:
    session = db.session
    endpoint = service.get_endpoint(session, endpoint_id, request_scope())
    actions = service.recent_actions(session, endpoint)
    waiting = any(not a.finished and not service.is_stale(a) for a in actions)
    keys = hostkeys.keys_of(session, endpoint.mgmt_address, endpoint.mgmt_port) if endpoint.mgmt_address else []
    try:
        service.check_manageable(endpoint)
        unmanageable = ""
    except DomainError as exc:
        unmanageable = exc.message
    page = render_template(
        "devices/endpoint.html", endpoint=endpoint, actions=actions, waiting=waiting, keys=keys,
        unmanageable=unmanageable, is_stale=service.is_stale,
        status=service.latest_result(session, endpoint, ActionKind.STATUS),
        config=service.latest_result(session, endpoint, ActionKind.FETCH_CONFIG))
    return _polled(page, waiting)


@bp.post("/endpoints/<int:endpoint_id>/actions")
@require("devices.act")
def request_action(endpoint_id: int) -> ResponseReturnValue:
    session = db.session
    endpoint = scopes.require_change(request_scope(), service.get_endpoint(session, endpoint_id, request_scope()))
    kind = service.parse_action(request.form.get("action", "") or (request.get_json(silent=True) or {}).get(
        "action", ""))
    action = service.request_action(session, endpoint, kind, current_user)
    if wants_json():
        response = jsonify(action_json(action))
        response.status_code = 202
        response.headers["Location"] = url_for("devices.action_page", action_id=action.id)
        return response
    return redirect(url_for("devices.action_page", action_id=action.id), code=303)


@bp.get("/actions/<int:action_id>")
@require("devices.act")
def action_page(action_id: int) -> ResponseReturnValue:
    action = service.get_action(db.session, action_id, request_scope())
    if wants_json():
        return jsonify(action_json(action))
    endpoint = action.endpoint
    keys = hostkeys.keys_of(db.session, endpoint.mgmt_address, endpoint.mgmt_port) if endpoint.mgmt_address else []
    stale = service.is_stale(action)
    page = render_template("devices/action.html", action=action, endpoint=endpoint, keys=keys, stale=stale)
    return _polled(page, not action.finished and not stale)


def _polled(page: str, waiting: bool) -> Response:
    """The page, asking the browser to load it again in a moment while the worker has not answered."""
    response = make_response(page)
    if waiting:
        response.headers["Refresh"] = str(POLL_SECONDS)
    return response


@bp.get("/host-keys")
@require("devices.act")
def host_keys() -> ResponseReturnValue:
    session = db.session
    pending = hostkeys.pending_keys(session)
    accepted = hostkeys.accepted_keys(session)
    addresses = {k.address for k, _pinned in pending} | {k.address for k in accepted}
    endpoints: dict[tuple[str, int], list[Endpoint]] = {}
    if addresses:
        for e in session.scalars(sa.select(Endpoint).where(Endpoint.mgmt_address.in_(addresses))
                                 .order_by(Endpoint.room_name)):
            endpoints.setdefault((e.mgmt_address, e.mgmt_port), []).append(e)
    return render_template("devices/host_keys.html", pending=pending, accepted=accepted, endpoints=endpoints)


def _back(default: str) -> str:
    target = request.form.get("next", "")
    # Only a path of this site: never an address elsewhere.
    return target if target.startswith("/") and not target.startswith("//") else default


@bp.post("/host-keys/<int:key_id>/accept")
@require("devices.act")
def accept_host_key(key_id: int) -> ResponseReturnValue:
    key = hostkeys.get_key(db.session, key_id)
    fingerprint = request.form.get("fingerprint", "")
    if fingerprint and fingerprint != key.fingerprint:
        # The page showed another key than the one stored under this id: accept nothing.
        flash(_("The key changed since the page was shown; compare the fingerprint again."), "error")
        return redirect(url_for("devices.host_keys"))
    hostkeys.accept(db.session, key, current_user)
    flash(_("Host key %(fingerprint)s of %(host)s accepted.", fingerprint=key.fingerprint, host=key.where),
          "success")
    return redirect(_back(url_for("devices.host_keys")))


@bp.post("/host-keys/<int:key_id>/forget")
@require("devices.act")
def forget_host_key(key_id: int) -> ResponseReturnValue:
    key = hostkeys.get_key(db.session, key_id)
    fingerprint, where = key.fingerprint, key.where
    hostkeys.forget(db.session, key)
    flash(_("Host key %(fingerprint)s of %(host)s forgotten.", fingerprint=fingerprint, host=where), "success")
    return redirect(_back(url_for("devices.host_keys")))



# ---------------------------------------------------------------- bridge certificates

@bp.get("/certificates")
@require("devices.act")
def bridge_certificates() -> ResponseReturnValue:
    session = db.session
    bridge_rows = list(session.scalars(sa.select(Bridge).where(Bridge.status != Status.RETIRED)
                                       .order_by(Bridge.name)))
    by_address: dict[tuple[str, int], list[Bridge]] = {}
    for bridge in bridge_rows:
        try:
            target = bridges.target_of(bridge)
        except DomainError:
            continue
        by_address.setdefault((target.address, target.port), []).append(bridge)
    return render_template("devices/certificates.html", pending=certificates.pending_certificates(session),
                           accepted=certificates.accepted_certificates(session), bridges=bridge_rows,
                           by_address=by_address)


@bp.post("/bridges/<int:bridge_id>/fetch-certificate")
@require("devices.act")
def fetch_bridge_certificate(bridge_id: int) -> ResponseReturnValue:
    # In the request, unlike the quick actions: one TLS handshake bounded by BRIDGE_CONNECT_TIMEOUT, no login and
    # no request, and the technician is waiting for the fingerprint to compare it.
    bridge = bridges.get_bridge(db.session, bridge_id)
    try:
        row = bridges.fetch_certificate(db.session, bridge)
    except BridgeError as exc:
        flash(exc.message, "error")
        return redirect(_back(url_for("devices.bridge_certificates")))
    pinned = certificates.pinned_certificate(db.session, row.address, row.port)
    if row.state == CertificateState.ACCEPTED:
        flash(_("The MCU %(bridge)s presents its accepted certificate (%(fingerprint)s).", bridge=bridge.name,
                fingerprint=row.fingerprint), "success")
    elif pinned is not None:
        flash(_("The certificate of the MCU %(bridge)s has changed: pinned %(pinned)s, presented %(presented)s. "
                "Connections are refused until a technician accepts the new one.", bridge=bridge.name,
                pinned=pinned.fingerprint, presented=row.fingerprint), "error")
    else:
        flash(_("The MCU %(bridge)s presents the certificate %(fingerprint)s: compare it with the one its "
                "administration shows before accepting it.", bridge=bridge.name, fingerprint=row.fingerprint),
              "success")
    return redirect(_back(url_for("devices.bridge_certificates")))


@bp.post("/certificates/<int:certificate_id>/accept")
@require("devices.act")
def accept_bridge_certificate(certificate_id: int) -> ResponseReturnValue:
    row = certificates.get_certificate(db.session, certificate_id)
    fingerprint = request.form.get("fingerprint", "")
    if fingerprint and fingerprint != row.fingerprint:
        # The page showed another certificate than the one stored under this id: accept nothing.
        flash(_("The certificate changed since the page was shown; compare the fingerprint again."), "error")
        return redirect(url_for("devices.bridge_certificates"))
    certificates.accept(db.session, row, current_user)
    flash(_("Certificate %(fingerprint)s of %(host)s accepted.", fingerprint=row.fingerprint, host=row.where),
          "success")
    return redirect(_back(url_for("devices.bridge_certificates")))


@bp.post("/certificates/<int:certificate_id>/forget")
@require("devices.act")
def forget_bridge_certificate(certificate_id: int) -> ResponseReturnValue:
    row = certificates.get_certificate(db.session, certificate_id)
    fingerprint, where = row.fingerprint, row.where
    certificates.forget(db.session, row)
    flash(_("Certificate %(fingerprint)s of %(host)s forgotten.", fingerprint=fingerprint, host=where), "success")
    return redirect(_back(url_for("devices.bridge_certificates")))
