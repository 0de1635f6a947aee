"""Login, logout and the language switch."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user

from app.auth import audit
from app.auth.forms import LoginForm
from app.auth.permissions import login_required_only, public, require
from app.auth.service import authenticate
from app.db import db
from app.extensions import limiter

bp = Blueprint("auth", __name__)


def _login_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT"]


def _safe_next(target: str | None) -> str:
    # Only local paths: an open redirect after login would help phishing.
    if target and urlsplit(target).netloc == "" and target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("sites.home")


@bp.route("/login", methods=["GET", "POST"])
@public("the login page itself; attempts are rate-limited per address")
@limiter.limit(_login_limit, methods=["POST"])
def login() -> ResponseReturnValue:
    if current_user.is_authenticated:
        return redirect(url_for("sites.home"))
    form = LoginForm()
    if form.validate_on_submit():
        user = authenticate(db.session, form.email.data or "", form.password.data or "")
        if user is None:
            flash(_("Wrong email or password."), "error")
            return render_template("auth/login.html", form=form), 401
        login_user(user)
        session.permanent = True
        g.actor_token = audit.set_actor(audit.Actor(user.id, user.email))
        audit.record(db.session, "login", "User", str(user.id), user.email)
        return redirect(_safe_next(request.args.get("next")))
    return render_template("auth/login.html", form=form)


@bp.post("/logout")
@login_required_only
def logout() -> ResponseReturnValue:
    logout_user()
    return redirect(url_for("auth.login"))


@bp.get("/language/<code>")
@public("switching the interface language changes nothing but the visitor's own session")
def language(code: str) -> ResponseReturnValue:
    from app.web import LANGUAGES

    if code in LANGUAGES:
        session["lang"] = code
        if current_user.is_authenticated:
            current_user.language = code
    return redirect(_safe_next(request.referrer and urlsplit(request.referrer).path))


@bp.get("/profile")
@login_required_only
def profile() -> ResponseReturnValue:
    return render_template("error.html", status=200, message=current_user.email)  # replaced by the profile page


@bp.get("/users")
@require("users.manage")
def user_list() -> ResponseReturnValue:
    return "users"


@bp.get("/audit")
@require("audit.view")
def audit_log() -> ResponseReturnValue:
    return "audit"
