"""The meetings' JSON API under /api/v1/meetings. (Filled in by the meetings API work.)"""

from flask_smorest import Blueprint

blueprints: list[Blueprint] = []
