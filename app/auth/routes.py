"""Login (password, then the two-factor code), logout, the pages a login may have to pass first (a new password,
two-factor set-up), the language switch, one's own profile and API tokens, the users admin and the audit log."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any, TypeVar
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import Blueprint, current_app, flash, g, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import get_locale, ngettext
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import SelectChoice

from app.auth import audit, service, two_factor
from app.auth.access import forget_session, start_session
from app.auth.forms import (
    LANGUAGE_LABELS,
    ROLE_LABELS,
    AuditFilterForm,
    LanguageForm,
    LoginCodeForm,
    LoginForm,
    PasswordChangeForm,
    PasswordRequiredForm,
    PasswordResetForm,
    TokenForm,
    TwoFactorConfirmForm,
    UserCreateForm,
    UserEditForm,
    UserSearchForm,
)
from app.auth.models import ApiToken, User
from app.auth.service import authenticate
from app.db import db
from app.errors import DomainError
from app.extensions import limiter
from app.web.access import login_required_only, public, require

bp = Blueprint("auth", __name__)
T = TypeVar("T")


def _login_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT"]


def _limit_minutes() -> int:
    limit = limiter.current_limit
    # Rounded, not ceiled: the limiter's reset time carries an extra second, which must not read as "2 minutes".
    return max(1, round((limit.reset_at - time.time()) / 60)) if limit is not None else 1


def _login_limit_message() -> str:
    return ngettext("Too many login attempts from your address. Try again in %(num)d minute.",
                    "Too many login attempts from your address. Try again in %(num)d minutes.", _limit_minutes())


def _account_limit() -> str:
    return current_app.config["LOGIN_ACCOUNT_RATE_LIMIT"]


def _account_key() -> str:
    """The account a login attempt is for (the email typed, or the one whose password step this session passed),
    so that guesses spread over many addresses still count together."""
    pending = session.get(PENDING_LOGIN)
    if request.endpoint == "auth.login_code" and isinstance(pending, dict):
        return f"account:{pending.get('email', '')}"
    return "account:" + (request.form.get("email") or "").strip().lower()


def _failed(response: ResponseReturnValue) -> bool:
    # Only refused attempts count against an account: its owner logging in must not lock them out.
    return getattr(response, "status_code", 200) == 401


def _account_limit_message() -> str:
    return ngettext("Too many failed attempts for this account. Try again in %(num)d minute.",
                    "Too many failed attempts for this account. Try again in %(num)d minutes.", _limit_minutes())


_per_account = limiter.shared_limit(_account_limit, scope="login-account", key_func=_account_key, methods=["POST"],
                                    deduct_when=_failed, error_message=_account_limit_message)


def _safe_next(target: str | None) -> str:
    # Only local paths: an open redirect after login would help phishing. Browsers read "\" as "/" and drop
    # tabs and newlines, so "/\evil.example" or "/\t/evil.example" would leave the site too.
    if (target and target.startswith("/") and target[1:2] not in ("/", "\\") and "\\" not in target
            and not any(ch.isspace() or ord(ch) < 32 for ch in target)):
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc:
            return target
    return url_for("sites.home")


# ---------------------------------------------------------------- shared by the pages below

def _page(stmt: sa.Select[tuple[T]]) -> tuple[list[T], int, bool]:
    """One page of rows, its number, and whether another follows (one extra row tells, no count needed)."""
    page = request.args.get("page", 1, type=int) or 1
    page = max(page, 1)
    size = current_app.config["PAGE_SIZE"]
    rows = list(db.session.scalars(stmt.limit(size + 1).offset((page - 1) * size)))
    return rows[:size], page, len(rows) > size


def _page_url(page: int) -> str:
    args = request.args.to_dict()
    args["page"] = str(page)
    return url_for(request.endpoint or "sites.home", **(request.view_args or {}), **args)


def _refused(form: FlaskForm, error: DomainError) -> int:
    """Show a service's refusal next to the fields at fault; nothing of the attempt is kept."""
    db.session.rollback()
    flash(error.message, "error")
    for name, messages in error.fields.items():
        field = getattr(form, name, None)
        if field is not None and hasattr(field, "errors"):
            field.errors = [*field.errors, *messages]
    return error.status if error.status in (409, 422) else 422


# ---------------------------------------------------------------- login

PENDING_LOGIN = "_pending_login"  # the password step passed, the code not yet typed
PENDING_LOGIN_SECONDS = 300


@bp.route("/login", methods=["GET", "POST"])
@public("the login page itself; attempts are rate-limited per address and per account")
@limiter.limit(_login_limit, methods=["POST"], error_message=_login_limit_message)
@_per_account
def login() -> ResponseReturnValue:
    if current_user.is_authenticated:
        return redirect(url_for("sites.home"))
    form = LoginForm()
    if form.validate_on_submit():
        user = authenticate(db.session, form.email.data or "", form.password.data or "")
        if user is None:
            # One message for an unknown email, a wrong password and a deactivated account: the page must
            # not tell a guesser which addresses exist.
            flash(_("Wrong email or password."), "error")
            return render_template("auth/login.html", form=form), 401
        target = _safe_next(request.args.get("next"))
        if user.totp_enabled_at is not None:
            session[PENDING_LOGIN] = {"user_id": user.id, "version": user.session_version, "email": user.email,
                                      "remember": bool(form.remember.data), "next": target, "at": time.time()}
            return redirect(url_for("auth.login_code"))
        return _log_in(user, bool(form.remember.data), target)
    return render_template("auth/login.html", form=form), 422 if form.is_submitted() else 200


def _log_in(user: User, remember: bool, target: str) -> ResponseReturnValue:
    session.pop(PENDING_LOGIN, None)
    login_user(user)
    start_session(user, remember)
    g.actor_token = audit.set_actor(audit.Actor(user.id, user.email))
    audit.record(db.session, "login", "User", str(user.id), user.email + (" (remember me)" if remember else ""))
    return redirect(target)


def _pending_user() -> tuple[User, dict[str, Any]] | None:
    """The user whose password this session has just proved, if that was recently and nothing changed since."""
    pending = session.get(PENDING_LOGIN)
    if not isinstance(pending, dict) or time.time() - float(pending.get("at", 0)) > PENDING_LOGIN_SECONDS:
        return None
    user = db.session.get(User, int(pending.get("user_id", 0)))
    if user is None or not user.active or user.session_version != pending.get("version") \
            or user.totp_enabled_at is None:
        return None
    return user, pending


@bp.route("/login/code", methods=["GET", "POST"])
@public("the second step of a login, only after this session passed the password step; attempts are "
        "rate-limited per address and per account")
@limiter.limit(_login_limit, methods=["POST"], error_message=_login_limit_message)
@_per_account
def login_code() -> ResponseReturnValue:
    found = _pending_user()
    if found is None:
        session.pop(PENDING_LOGIN, None)
        flash(_("Log in with your email and password first."), "error")
        return redirect(url_for("auth.login"))
    user, pending = found
    form = LoginCodeForm()
    if form.validate_on_submit():
        if two_factor.verify(db.session, user, form.code.data or ""):
            return _log_in(user, bool(pending.get("remember")), _safe_next(pending.get("next")))
        flash(_("That code is wrong, or was used already."), "error")
        return render_template("auth/login_code.html", form=form), 401
    return render_template("auth/login_code.html", form=form), 422 if form.is_submitted() else 200


@bp.post("/logout")
@login_required_only
def logout() -> ResponseReturnValue:
    # Every session of the user ends, not just this browser's: a copied cookie must not outlive the logout.
    service.end_sessions(db.session, current_user, "logout")
    logout_user()
    forget_session()
    return redirect(url_for("auth.login"))


# ---------------------------------------------------------------- what a login may have to pass first

@bp.route("/password/new", methods=["GET", "POST"])
@login_required_only
def password_required() -> ResponseReturnValue:
    """A generated or admin-set password is replaced before anything else (app.auth.access sends the user here)."""
    if not current_user.must_change_password:
        return redirect(url_for("sites.home"))
    form = PasswordRequiredForm()
    status = 200
    if form.is_submitted():
        status = 422
        if form.validate():
            try:
                service.replace_given_password(db.session, current_user, form.new_password.data or "")
            except DomainError as error:
                status = _refused(form, error)
            else:
                # This session carries the new session version; the others have ended.
                login_user(current_user._get_current_object())
                flash(_("Your password was changed."), "ok")
                return redirect(url_for("sites.home"))
    return render_template("auth/password_required.html", form=form), status


@bp.route("/profile/two-factor", methods=["GET", "POST"])
@login_required_only
def two_factor_setup() -> ResponseReturnValue:
    """Set up two-factor sign-in: scan the code (or type the key), confirm with a code, keep the recovery codes."""
    user = current_user
    if user.totp_enabled_at is not None:
        return _render_two_factor(None)
    form = TwoFactorConfirmForm()
    status = 200
    if form.is_submitted():
        status = 422
        if form.validate():
            try:
                codes = two_factor.confirm_enrolment(db.session, user, form.code.data or "")
            except DomainError as error:
                status = _refused(form, error)
            else:
                flash(_("Two-factor sign-in is on."), "ok")
                return _render_two_factor(None, recovery_codes=codes, status=201)
    return _render_two_factor(form, status=status)


def _render_two_factor(form: TwoFactorConfirmForm | None, *, recovery_codes: list[str] | None = None,
                       status: int = 200) -> ResponseReturnValue:
    user = current_user
    context: dict[str, Any] = {"form": form, "recovery_codes": recovery_codes,
                               "codes_left": two_factor.recovery_codes_left(db.session, user),
                               "required": user.role.value in two_factor.required_roles(current_app.config)}
    if user.totp_enabled_at is None:
        secret = two_factor.pending_secret(db.session, user)
        uri = two_factor.provisioning_uri(user, secret)
        context.update(secret=secret, qr=two_factor.qr_svg_data_uri(uri))
    return render_template("auth/two_factor.html", **context), status


@bp.post("/profile/two-factor/recovery-codes")
@login_required_only
def two_factor_recovery_codes() -> ResponseReturnValue:
    if current_user.totp_enabled_at is None:
        return redirect(url_for("auth.two_factor_setup"))
    codes = two_factor.replace_recovery_codes(db.session, current_user)
    return _render_two_factor(None, recovery_codes=codes, status=201)


@bp.get("/language/<code>")
@public("switching the interface language changes nothing but the visitor's own session")
def language(code: str) -> ResponseReturnValue:
    from app.web.cycle import LANGUAGES

    if code in LANGUAGES:
        session["lang"] = code
        if current_user.is_authenticated:
            current_user.language = code
    return redirect(_safe_next(request.referrer and urlsplit(request.referrer).path))


# ---------------------------------------------------------------- one's own profile and API tokens

def _render_profile(status: int = 200, *, language_form: LanguageForm | None = None,
                    password_form: PasswordChangeForm | None = None, token_form: TokenForm | None = None,
                    new_token: ApiToken | None = None, new_secret: str | None = None) -> ResponseReturnValue:
    response = current_app.make_response((render_template(
        "auth/profile.html",
        language_form=language_form or LanguageForm(formdata=None, language=str(get_locale())),
        password_form=password_form or PasswordChangeForm(formdata=None),
        token_form=token_form or TokenForm(formdata=None),
        tokens=service.tokens_of(db.session, current_user),
        new_token=new_token, new_secret=new_secret, role_labels=ROLE_LABELS), status))
    if new_secret:
        # The secret is on this page only; keep it out of browser and proxy caches.
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/profile")
@login_required_only
def profile() -> ResponseReturnValue:
    return _render_profile()


@bp.post("/profile/language")
@login_required_only
def profile_language() -> ResponseReturnValue:
    form = LanguageForm()
    if not form.validate():
        return _render_profile(422, language_form=form)
    current_user.language = form.language.data
    session["lang"] = form.language.data
    flash(_("Interface language set to %(language)s.", language=LANGUAGE_LABELS[form.language.data]), "ok")
    return redirect(url_for("auth.profile"))


@bp.post("/profile/password")
@login_required_only
def profile_password() -> ResponseReturnValue:
    form = PasswordChangeForm()
    if not form.validate():
        return _render_profile(422, password_form=form)
    try:
        service.change_own_password(db.session, current_user, form.current_password.data or "",
                                    form.new_password.data or "")
    except DomainError as error:
        return _render_profile(_refused(form, error), password_form=form)
    # This session carries the new session version; every other one has ended.
    login_user(current_user._get_current_object())
    flash(_("Your password was changed."), "ok")
    return redirect(url_for("auth.profile"))


@bp.post("/profile/tokens")
@login_required_only
def token_create() -> ResponseReturnValue:
    form = TokenForm()
    if not form.validate():
        return _render_profile(422, token_form=form)
    token, secret = service.create_token(db.session, current_user, (form.name.data or "").strip())
    return _render_profile(201, new_token=token, new_secret=secret)


@bp.post("/profile/tokens/<int:token_id>/revoke")
@login_required_only
def token_revoke(token_id: int) -> ResponseReturnValue:
    token = service.revoke_token(db.session, token_id, owner=current_user)
    flash(_("The token %(prefix)s… is revoked.", prefix=token.prefix), "ok")
    return redirect(url_for("auth.profile"))


# ---------------------------------------------------------------- users admin

@bp.get("/users")
@require("users.manage")
def user_list() -> ResponseReturnValue:
    form = UserSearchForm(formdata=request.args)
    if not form.validate():
        return render_template("auth/user_list.html", form=form, users=[], page=1, has_next=False,
                               page_url=_page_url, role_labels=ROLE_LABELS), 422
    users, page, has_next = _page(service.user_query(service.UserFilter(q=form.q.data or "",
                                                                        role=form.role.data or "")))
    return render_template("auth/user_list.html", form=form, users=users, page=page, has_next=has_next,
                           page_url=_page_url, role_labels=ROLE_LABELS)


@bp.route("/users/new", methods=["GET", "POST"])
@require("users.manage")
def user_create() -> ResponseReturnValue:
    form = UserCreateForm()
    form.scope.choices = service.scope_choices(db.session)
    status = 200
    if form.is_submitted():
        status = 422
        if form.validate():
            generated = None if form.password.data else service.generated_password()
            try:
                # Whoever set the first password, the admin knows it: the user chooses their own at first login.
                user = service.create_user(db.session, form.email.data or "", form.role.data or "",
                                           form.password.data or generated or "",
                                           name=(form.name.data or "").strip(),
                                           site_code=(form.site.data or "").strip() or None,
                                           must_change_password=True)
                service.set_scope(db.session, user, form.scope.data)
            except DomainError as error:
                status = _refused(form, error)
            else:
                flash(_("User %(email)s created.", email=user.email), "ok")
                if generated:
                    return _render_user(user, 201, generated_password=generated)
                return redirect(url_for("auth.user_edit", user_id=user.id))
    return render_template("auth/user_create.html", form=form), status


def _render_user(user: User, status: int = 200, *, form: UserEditForm | None = None,
                 reset_form: PasswordResetForm | None = None, generated_password: str | None = None
                 ) -> ResponseReturnValue:
    if form is None:
        form = UserEditForm(formdata=None, data={"name": user.name, "role": user.role.value,
                                                 "site": user.site.code if user.site else "",
                                                 "active": user.active,
                                                 "scope": user.scope_site.code if user.scope_site else ""})
    form.scope.choices = service.scope_choices(db.session)
    return render_template("auth/user_edit.html", user=user, form=form,
                           reset_form=reset_form or PasswordResetForm(formdata=None),
                           generated_password=generated_password,
                           tokens=service.tokens_of(db.session, user), role_labels=ROLE_LABELS), status


@bp.route("/users/<int:user_id>", methods=["GET", "POST"])
@require("users.manage")
def user_edit(user_id: int) -> ResponseReturnValue:
    user = service.get_user_by_id(db.session, user_id)
    if request.method == "GET":
        return _render_user(user)
    form = UserEditForm()
    form.scope.choices = service.scope_choices(db.session)
    if not form.validate():
        return _render_user(user, 422, form=form)
    try:
        service.update_user(db.session, user, name=form.name.data or "", role=form.role.data or "",
                            site_code=form.site.data, active=form.active.data, by=current_user)
        service.set_scope(db.session, user, form.scope.data)
    except DomainError as error:
        return _render_user(user, _refused(form, error), form=form)
    flash(_("Changes to %(email)s saved.", email=user.email), "ok")
    return redirect(url_for("auth.user_edit", user_id=user.id))


@bp.post("/users/<int:user_id>/password")
@require("users.manage")
def user_password_reset(user_id: int) -> ResponseReturnValue:
    user = service.get_user_by_id(db.session, user_id)
    form = PasswordResetForm()
    if not form.validate():
        return _render_user(user, 422, reset_form=form)
    try:
        service.reset_password(db.session, user, form.password.data or "")
    except DomainError as error:
        return _render_user(user, _refused(form, error), reset_form=form)
    flash(_("New password set for %(email)s; tell them over a safe channel.", email=user.email), "ok")
    return redirect(url_for("auth.user_edit", user_id=user.id))


@bp.post("/users/<int:user_id>/two-factor/off")
@require("users.manage")
def user_two_factor_off(user_id: int) -> ResponseReturnValue:
    """A user lost their phone and their recovery codes: the admin turns their second factor off (those whose
    role requires one set it up again at their next login) and ends their sessions."""
    user = service.get_user_by_id(db.session, user_id)
    two_factor.turn_off(db.session, user)
    service.end_sessions(db.session, user, "two-factor off")
    flash(_("Two-factor sign-in of %(email)s is off.", email=user.email), "ok")
    return redirect(url_for("auth.user_edit", user_id=user.id))


@bp.post("/users/<int:user_id>/tokens/<int:token_id>/revoke")
@require("users.manage")
def user_token_revoke(user_id: int, token_id: int) -> ResponseReturnValue:
    user = service.get_user_by_id(db.session, user_id)
    token = service.revoke_token(db.session, token_id, owner=user)
    flash(_("The token %(prefix)s… of %(email)s is revoked.", prefix=token.prefix, email=user.email), "ok")
    return redirect(url_for("auth.user_edit", user_id=user.id))


# ---------------------------------------------------------------- audit log

def _local_midnight_utc(day: dt.date) -> dt.datetime:
    from app.config import local_zone

    return dt.datetime.combine(day, dt.time(), tzinfo=local_zone()).astimezone(dt.UTC)


@bp.get("/audit")
@require("audit.view")
def audit_log() -> ResponseReturnValue:
    form = AuditFilterForm(formdata=request.args)
    types, actions = audit.known_values(db.session)
    form.object_type.choices = [SelectChoice("", _("All types")), *(SelectChoice(t) for t in types)]
    form.action.choices = [SelectChoice("", _("All actions")), *(SelectChoice(a) for a in actions)]
    context: dict[str, Any] = {"form": form, "page_url": _page_url, "changes_of": audit.changes_of}
    if not form.validate():
        return render_template("auth/audit_log.html", entries=[], page=1, has_next=False, **context), 422
    since, until = form.since.data, form.until.data
    query = audit.audit_query(audit.AuditFilter(
        object_type=form.object_type.data or "", actor=form.actor.data or "", action=form.action.data or "",
        object_id=form.object_id.data or "",
        since=_local_midnight_utc(since) if since else None,
        # "To" is a whole local day: entries before the next local midnight.
        until=_local_midnight_utc(until + dt.timedelta(days=1)) if until else None))
    entries, page, has_next = _page(query)
    return render_template("auth/audit_log.html", entries=entries, page=page, has_next=has_next, **context)
