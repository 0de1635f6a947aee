"""The inventory's JSON API under /api/v1."""

from flask_smorest import Blueprint

blueprints: list[Blueprint] = []
