"""ICS feeds and the signed links sent in invitations. (Filled in by the calendar work.)"""

from flask import Blueprint

bp = Blueprint("calendar", __name__)
