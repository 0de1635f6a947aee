"""Forms of the auth pages (Flask-WTF: every form that changes something carries its CSRF token)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import BooleanField, EmailField, PasswordField, SelectChoice, SelectField, StringField
from wtforms.fields import DateField
from wtforms.validators import DataRequired, EqualTo, Length, Optional, ValidationError

from app.auth.models import Role
from app.auth.service import MIN_PASSWORD_LENGTH
from app.web.forms import CheckedForm

ROLE_LABELS = {
    Role.ADMIN: _l("Admin"),
    Role.SECRETARIAT: _l("Secretariat"),
    Role.TECHNICIAN: _l("Technician"),
    Role.OPERATOR: _l("Operator"),
    Role.VIEWER: _l("Viewer"),
    Role.SITE_STAFF: _l("Site staff"),
}
LANGUAGE_LABELS = {"vi": "Tiếng Việt", "en": "English"}  # each in its own language, never translated


def _role_choices() -> list[SelectChoice]:
    return [SelectChoice(role.value, label) for role, label in ROLE_LABELS.items()]


class LoginForm(CheckedForm):
    email = EmailField(_l("Email"), validators=[DataRequired()])
    password = PasswordField(_l("Password"), validators=[DataRequired()])
    remember = BooleanField(_l("Remember me on this computer"),
                            description=_l("Only on a computer of your own: the session then lasts days, not hours."))


class LoginCodeForm(CheckedForm):
    code = StringField(_l("Code"), validators=[DataRequired(), Length(max=20)],
                       description=_l("The six digits your authenticator app shows, or one of your recovery codes."))


class TwoFactorConfirmForm(CheckedForm):
    code = StringField(_l("Code from the app"), validators=[DataRequired(), Length(max=10)])


class PasswordRequiredForm(CheckedForm):
    new_password = PasswordField(_l("New password"), validators=[
        DataRequired(), Length(min=MIN_PASSWORD_LENGTH, message=_l("At least %(min)d characters."))])
    confirm = PasswordField(_l("New password again"), validators=[
        DataRequired(), EqualTo("new_password", message=_l("The two new passwords differ."))])


class LanguageForm(CheckedForm):
    language = SelectField(_l("Language"),
                           choices=[SelectChoice(code, label) for code, label in LANGUAGE_LABELS.items()])


class PasswordChangeForm(CheckedForm):
    current_password = PasswordField(_l("Current password"), validators=[DataRequired()])
    new_password = PasswordField(_l("New password"), validators=[
        DataRequired(), Length(min=MIN_PASSWORD_LENGTH, message=_l("At least %(min)d characters."))])
    confirm = PasswordField(_l("New password again"), validators=[
        DataRequired(), EqualTo("new_password", message=_l("The two new passwords differ."))])


class TokenForm(CheckedForm):
    name = StringField(_l("Token name"), validators=[DataRequired(), Length(max=100)],
                       description=_l("What the token is for, e.g. the script that uses it."))


class _SiteRule:
    """Site staff belong to a site: the site code is required for that role."""

    def __call__(self, form: CheckedForm, field: StringField) -> None:
        if form.role.data == Role.SITE_STAFF.value and not (field.data or "").strip():
            raise ValidationError(_l("Required for site staff."))


class UserCreateForm(CheckedForm):
    email = EmailField(_l("Email"), validators=[DataRequired(), Length(max=254)])
    name = StringField(_l("Name"), validators=[Length(max=200)])
    role = SelectField(_l("Role"), choices=_role_choices(), default=Role.VIEWER.value)
    site = StringField(_l("Site code"), validators=[_SiteRule(), Length(max=32)],
                       description=_l("Required for site staff: the site they belong to."))
    scope = SelectField(_l("Scope"), choices=[], validate_choice=False,
                        description=_l("The site whose subtree the user sees and changes; empty: the whole tree."))
    password = PasswordField(_l("Initial password"), validators=[
        Optional(), Length(min=MIN_PASSWORD_LENGTH, message=_l("At least %(min)d characters."))],
        description=_l("Leave empty to have one generated. Either way the user chooses their own at first login."))


class UserEditForm(CheckedForm):
    name = StringField(_l("Name"), validators=[Length(max=200)])
    role = SelectField(_l("Role"), choices=_role_choices())
    site = StringField(_l("Site code"), validators=[_SiteRule(), Length(max=32)],
                       description=_l("Required for site staff: the site they belong to."))
    scope = SelectField(_l("Scope"), choices=[], validate_choice=False,
                        description=_l("The site whose subtree the user sees and changes; empty: the whole tree."))
    active = BooleanField(_l("Active (may log in and use API tokens)"))


class PasswordResetForm(CheckedForm):
    password = PasswordField(_l("New password"), validators=[
        DataRequired(), Length(min=MIN_PASSWORD_LENGTH, message=_l("At least %(min)d characters."))])


class UserSearchForm(CheckedForm):
    """The filters of the users list (a GET form: nothing changes, so no CSRF token)."""

    class Meta:
        csrf = False

    q = StringField(_l("Search"), validators=[Optional()])
    role = SelectField(_l("Role"), choices=[SelectChoice("", _l("All roles")), *_role_choices()], default="")


class AuditFilterForm(CheckedForm):
    """The filters of the audit log; dates are days in local time (Asia/Ho_Chi_Minh)."""

    class Meta:
        csrf = False

    object_type = SelectField(_l("Object type"), choices=[], validate_choice=False, default="")
    action = SelectField(_l("Action"), choices=[], validate_choice=False, default="")
    actor = StringField(_l("Who"), validators=[Optional(), Length(max=254)])
    object_id = StringField(_l("Object id"), validators=[Optional(), Length(max=50)])
    since = DateField(_l("From"), validators=[Optional()])
    until = DateField(_l("To"), validators=[Optional()])

    def validate_until(self, field: DateField) -> None:
        if field.data and self.since.data and field.data < self.since.data:
            raise ValidationError(_l("The end date is before the start date."))
