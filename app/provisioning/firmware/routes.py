"""Firmware store pages: the list of images, the upload form (technicians), an image's page with the extra
variables for firmware_upgrade.yml, and the devices' download by a link signed for one image.

Register in app/web.py: `from app.provisioning.firmware.routes import bp as firmware_bp` and
`app.register_blueprint(firmware_bp)` (the blueprint carries url_prefix /firmware).
"""

from __future__ import annotations

import json

from flask import Blueprint, current_app, flash, redirect, render_template, request, send_file, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf.file import FileField, FileRequired
from werkzeug.exceptions import RequestEntityTooLarge
from wtforms import StringField
from wtforms.validators import DataRequired, Length

from app.db import db
from app.errors import DomainError, NotFound
from app.extensions import csrf
from app.provisioning.firmware import service as firmware
from app.provisioning.firmware.models import FirmwareImage
from app.web.access import public, require
from app.web.forms import CheckedForm

bp = Blueprint("firmware", __name__, url_prefix="/firmware")


class UploadForm(CheckedForm):
    vendor = StringField(_l("Vendor"), validators=[DataRequired(), Length(max=80)], default="cisco")
    model = StringField(_l("Model (empty: every model of the vendor)"), validators=[Length(max=80)])
    version = StringField(_l("Version"), validators=[DataRequired(), Length(max=80)])
    file = FileField(_l("Image file"), validators=[FileRequired()])


def signed_link(image: FirmwareImage) -> str:
    """The address devices (and the play's checksum step) fetch the image from: signed for it, expiring."""
    return url_for("firmware.signed_download", token=firmware.download_token(image), filename=image.filename,
                   _external=True)


@bp.get("/")
@require("jobs.view")
def image_list() -> ResponseReturnValue:
    return render_template("firmware/list.html", images=firmware.list_images(db.session))


# Room in the request for the form's other fields, beside the image itself.
FORM_ROOM = 64 * 1024


@bp.route("/upload", methods=["GET", "POST"])
@require("jobs.launch")
@csrf.exempt  # not by the app-wide hook, which would read the body under the app-wide limit: the form checks it
def upload() -> ResponseReturnValue:
    incoming = firmware.IncomingImage()
    if request.method == "POST":
        # This route alone takes bodies up to FIRMWARE_MAX_MB (the app's MAX_CONTENT_LENGTH stays for the
        # others), and the image goes straight to the store's folder, hashed as it comes.
        request.max_content_length = firmware.upload_limit() + FORM_ROOM
        request._get_file_stream = incoming.stream_factory  # type: ignore[method-assign]  # Werkzeug's hook
    try:
        try:
            form = UploadForm()  # reads the request's body
        except RequestEntityTooLarge:
            form = UploadForm(formdata=None)
            message = firmware.too_large_message()
            form.file.errors = [message]
            flash(message, "error")
            return render_template("firmware/upload.html", form=form, limit_mb=_limit_mb()), 413
        if not form.validate_on_submit():
            status = 422 if form.is_submitted() else 200
            return render_template("firmware/upload.html", form=form, limit_mb=_limit_mb()), status
        try:
            image = firmware.store_upload(db.session, incoming, form.file.data.filename or "",
                                          form.vendor.data or "", form.model.data or "", form.version.data or "",
                                          current_user)
        except DomainError as error:
            for name, messages in error.fields.items():
                if name in form:
                    form[name].errors = list(messages)
            flash(error.message, "error")
            return render_template("firmware/upload.html", form=form, limit_mb=_limit_mb()), error.status
    finally:
        incoming.discard()  # a refused or broken-off upload leaves no file behind
    flash(_("Image %(version)s stored; its SHA-256 is %(sha256)s.", version=image.version, sha256=image.sha256),
          "success")
    return redirect(url_for("firmware.image_show", image_id=image.id))


def _limit_mb() -> int:
    return firmware.upload_limit() // firmware.MB


@bp.get("/<int:image_id>")
@require("jobs.view")
def image_show(image_id: int) -> ResponseReturnValue:
    image = firmware.get_image(db.session, image_id)
    extra_vars = json.dumps(firmware.launch_vars(image, signed_link(image)), indent=2, ensure_ascii=False)
    return render_template("firmware/show.html", image=image, extra_vars=extra_vars,
                           max_age_hours=firmware.TOKEN_MAX_AGE_SECONDS // 3600)


def _send(image: FirmwareImage) -> ResponseReturnValue:
    path = firmware.image_path(image)
    if not path.is_file():
        current_app.logger.error("file %s of firmware image %s is missing", image.storage_name, image.id)
        raise NotFound(_("The file of this firmware image is missing on the server; upload it again."))
    response = send_file(path, mimetype="application/octet-stream", as_attachment=True,
                         download_name=image.filename, etag=image.sha256, conditional=True)
    response.headers["X-Checksum-SHA256"] = image.sha256
    response.cache_control.private = True
    return response


@bp.get("/<int:image_id>/file")
@require("jobs.view")
def image_download(image_id: int) -> ResponseReturnValue:
    return _send(firmware.get_image(db.session, image_id))


@bp.get("/signed/<token>/<path:filename>")
@public("devices fetch the image they are upgraded to: the link is signed for one image and its checksum "
        "(itsdangerous, salt 'firmware') and expires; the token is checked inside")
def signed_download(token: str, filename: str) -> ResponseReturnValue:
    # The file name in the link is for devices that want one; only the token decides which image is served.
    return _send(firmware.image_for_token(db.session, token))
