"""Job pages (HTML). (Filled in by the jobs work.)"""

from flask import Blueprint

bp = Blueprint("jobs", __name__, url_prefix="/jobs")
