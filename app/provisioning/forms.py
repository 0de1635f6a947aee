"""Forms of the job and credential pages (Flask-WTF: each carries its CSRF token).

Field names are the service's, so that a DomainError's `fields` land next to the right input. A secret
typed into a form is never shown back: the views empty those fields before any page is rendered.
"""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from wtforms import (
    BooleanField,
    PasswordField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from app.provisioning.credentials.models import CredentialKind, EquipmentKind
from app.provisioning.models import STATE_LABELS, JobState
from app.web.forms import CheckedForm, optional_int, strip

CREDENTIAL_KIND_LABELS: dict[Any, Any] = {
    CredentialKind.SSH_KEY: _l("SSH private key"),
    CredentialKind.PASSWORD: _l("password"),
}
EQUIPMENT_KIND_LABELS: dict[Any, Any] = {
    EquipmentKind.ENDPOINT: _l("endpoints"),
    EquipmentKind.BRIDGE: _l("bridges"),
    EquipmentKind.LINK_ROUTER: _l("link routers"),
    EquipmentKind.MEDIA_SERVER: _l("media servers"),
    EquipmentKind.RECORDING_SERVER: _l("recording servers"),
}
LABELS: dict[Any, Any] = {**CREDENTIAL_KIND_LABELS, **EQUIPMENT_KIND_LABELS, **STATE_LABELS}


def text(label: Any, max_length: int, required: bool = False, **kwargs: Any) -> StringField:
    checks = [InputRequired()] if required else []
    return StringField(label, validators=[*checks, Length(max=max_length)], filters=[strip], default="", **kwargs)


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


# ---------------------------------------------------------------- credentials

class SecretFields(CheckedForm):
    password = PasswordField(_l("Password"), validators=[Optional(), Length(max=4096)])
    private_key = TextAreaField(_l("Private key"), validators=[Optional(), Length(max=16384)],
                                description=_l("OpenSSH or PEM, without a passphrase."),
                                render_kw={"rows": 8, "autocomplete": "off", "spellcheck": "false"})

    def secret(self, kind: CredentialKind) -> str:
        return (self.private_key.data if kind is CredentialKind.SSH_KEY else self.password.data) or ""

    def forget_secret(self) -> None:
        """Never send a secret back to the browser, not even the one just typed."""
        self.password.data = ""
        self.private_key.data = ""
        self.private_key.raw_data = []


class CredentialForm(SecretFields):
    name = text(_l("Name"), 100, required=True)
    kind = SelectField(_l("Kind"), coerce=CredentialKind, default=CredentialKind.PASSWORD,
                       choices=[SelectChoice(k.value, CREDENTIAL_KIND_LABELS[k]) for k in CredentialKind])
    username = text(_l("User name"), 100)
    description = text(_l("Description"), 500)


class CredentialEditForm(CheckedForm):
    name = text(_l("Name"), 100, required=True)
    username = text(_l("User name"), 100)
    description = text(_l("Description"), 500)


class SecretForm(SecretFields):
    """A new secret for a credential (the device's password or key was changed)."""


class AssignForm(CheckedForm):
    equipment_kind = SelectField(_l("Equipment"), coerce=EquipmentKind,
                                 choices=[SelectChoice(k.value, EQUIPMENT_KIND_LABELS[k]) for k in EquipmentKind])
    site_id = SelectField(_l("Only at this site (and below it)"), coerce=optional_int)
    device = SelectField(_l("Only this device"), default="")


# ---------------------------------------------------------------- templates and launches

class TemplateForm(CheckedForm):
    name = text(_l("Name"), 100, required=True)
    description = text(_l("Description"), 500)
    playbook = SelectField(_l("Playbook"), validators=[InputRequired()])
    default_limit = text(_l("Default limit"), 500, description=_l("Hosts or groups, e.g. endpoints:&site_TQ_HY."))
    tags = text(_l("Tags"), 500, description=_l("Comma-separated; empty runs every task."))
    extra_vars = TextAreaField(_l("Extra variables (JSON)"), filters=[strip], default="{}", render_kw={"rows": 4})
    launch_roles = MultiCheckboxField(_l("Roles that may launch it"))
    check_allowed = BooleanField(_l("Check mode allowed"), default=True)
    credential_id = SelectField(_l("Credential for every host"), coerce=optional_int,
                                description=_l("Empty: each host's assigned credential."))

    def changes(self) -> dict[str, Any]:
        return {name: self[name].data for name in ("name", "description", "playbook", "default_limit", "tags",
                                                   "extra_vars", "launch_roles", "check_allowed", "credential_id")}


class LaunchForm(CheckedForm):
    # Only for firmware_upgrade.yml (the view removes it otherwise): the image fills the playbook's variables.
    firmware_image = SelectField(_l("Firmware image"), coerce=optional_int, validators=[Optional()],
                                 description=_l("The image to install; its link, SHA-256 and version become the "
                                                "extra variables firmware_url, firmware_sha256 and "
                                                "firmware_version."))
    limit = text(_l("Limit"), 500, description=_l("Hosts or groups; empty: every host the playbook names."))
    tags = text(_l("Tags"), 500)
    check_mode = BooleanField(_l("Check mode: show what would change, change nothing"))
    extra_vars = TextAreaField(_l("Extra variables (JSON)"), filters=[strip], default="{}", render_kw={"rows": 4})
    # Meeting-window guard (issue 4): shown when a launch was refused because of a meeting.
    override = BooleanField(_l("Run it anyway, during the meeting"))
    override_reason = TextAreaField(_l("Reason for the override"), filters=[strip],
                                    validators=[Optional(), Length(max=1000)], render_kw={"rows": 2},
                                    description=_l("At least 10 characters; kept in the audit log."))


JOB_STATES = list(JobState)
