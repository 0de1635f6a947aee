"""The jobs' JSON API under /api/v1/jobs. (Filled in by the jobs work.)"""

from flask_smorest import Blueprint

blueprints: list[Blueprint] = []
