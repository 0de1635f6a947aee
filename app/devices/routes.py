"""Quick device actions and host-key acceptance (HTML). (Filled in by the device work.)"""

from flask import Blueprint

bp = Blueprint("devices", __name__, url_prefix="/devices")
