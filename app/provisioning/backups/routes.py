"""Configuration backup pages: the devices backed up, an endpoint's or a bridge's versions, one version's text,
and the diff between two versions."""

from __future__ import annotations

from flask import Blueprint, render_template, request
from flask.typing import ResponseReturnValue

from app.db import db
from app.provisioning.backups import service as backups
from app.sites.models import Bridge, Endpoint
from app.web.access import require

bp = Blueprint("backups", __name__, url_prefix="/backups")


@bp.get("/")
@require("jobs.view")
def index() -> ResponseReturnValue:
    """Every endpoint and bridge with a stored configuration, with its newest version."""
    return render_template("jobs/backups_index.html", devices=backups.backed_up_devices(db.session))


def _versions_page(device: backups.Device) -> ResponseReturnValue:
    """The versions, newest first; ?from=ID&to=ID shows the unified diff between two of them (by default the
    two newest)."""
    versions = backups.versions(db.session, device)
    old, new = backups.versions_to_compare(db.session, device, request.args.get("from"), request.args.get("to"),
                                           versions)
    diff = backups.unified_diff(old, new) if old and new else ""
    return render_template("jobs/backups_versions.html", device=device, is_bridge=isinstance(device, Bridge),
                           versions=versions, diff=diff, old=old, new=new)


@bp.get("/endpoints/<int:endpoint_id>")
@require("jobs.view")
def endpoint_versions(endpoint_id: int) -> ResponseReturnValue:
    return _versions_page(backups.get_device(db.session, Endpoint, endpoint_id))


@bp.get("/bridges/<int:bridge_id>")
@require("jobs.view")
def bridge_versions(bridge_id: int) -> ResponseReturnValue:
    return _versions_page(backups.get_device(db.session, Bridge, bridge_id))


@bp.get("/<int:backup_id>")
@require("jobs.view")
def show(backup_id: int) -> ResponseReturnValue:
    return render_template("jobs/backups_show.html", backup=backups.get_backup(db.session, backup_id))
