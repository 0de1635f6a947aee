"""Agenda and document pages of a meeting. (Filled in by the agenda work.)"""

from flask import Blueprint

bp = Blueprint("agenda", __name__, url_prefix="/meetings")
