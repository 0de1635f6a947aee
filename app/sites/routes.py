"""Inventory pages (HTML)."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask.typing import ResponseReturnValue

from app.auth.permissions import login_required_only, require

bp = Blueprint("sites", __name__)


@bp.get("/")
@login_required_only
def home() -> ResponseReturnValue:
    return render_template("error.html", status=200, message="home")


def _stub(name: str) -> None:
    def view() -> ResponseReturnValue:
        return name

    view.__name__ = name
    bp.get(f"/{name}")(require("inventory.view")(view))


for _name in ("site_list", "site_tree", "endpoint_list", "bridge_list", "host_list", "link_list",
              "maintenance_list"):
    _stub(_name)
