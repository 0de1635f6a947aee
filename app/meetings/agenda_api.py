"""The agenda's and documents' JSON API. (Filled in by the agenda work.)"""

from flask_smorest import Blueprint

blueprints: list[Blueprint] = []
