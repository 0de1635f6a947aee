"""Configuration backup pages: an endpoint's versions, one version's text, and the diff between two versions."""

from __future__ import annotations

from flask import Blueprint, render_template, request
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from app.auth.permissions import require
from app.db import db
from app.errors import Invalid, NotFound
from app.provisioning import backups
from app.sites.models import Endpoint

bp = Blueprint("backups", __name__, url_prefix="/backups")


@bp.get("/endpoints/<int:endpoint_id>")
@require("jobs.view")
def endpoint_versions(endpoint_id: int) -> ResponseReturnValue:
    """The versions, newest first; ?from=ID&to=ID shows the unified diff between two of them."""
    endpoint = db.session.get(Endpoint, endpoint_id)
    if endpoint is None:
        raise NotFound(_("No endpoint with id %(id)s.", id=endpoint_id))
    versions = backups.versions(db.session, endpoint)
    diff, old, new = "", None, None
    if request.args.get("from") and request.args.get("to"):
        try:
            old, new = (backups.get_backup(db.session, int(request.args[k])) for k in ("from", "to"))
        except ValueError:
            raise Invalid(_("Choose two versions to compare."), {"from": [_("Not a version.")]}) from None
        if endpoint_id not in (old.endpoint_id, new.endpoint_id) or old.endpoint_id != new.endpoint_id:
            raise Invalid(_("Both versions must belong to this endpoint."), {"from": [_("Not a version.")]})
        diff = backups.unified_diff(old, new)
    elif len(versions) >= 2:
        old, new = versions[1], versions[0]
        diff = backups.unified_diff(old, new)
    return render_template("jobs/backups_endpoint.html", endpoint=endpoint, versions=versions, diff=diff,
                           old=old, new=new)


@bp.get("/<int:backup_id>")
@require("jobs.view")
def show(backup_id: int) -> ResponseReturnValue:
    return render_template("jobs/backups_show.html", backup=backups.get_backup(db.session, backup_id))
