"""Bridge clients by vendor: each vendor module of app/devices/bridges/ registers its class with `@register`."""

from __future__ import annotations

import importlib
from typing import TypeVar

from flask_babel import gettext as _

from app.devices.bridges.base import BridgeClient, BridgeNotSupported

C = TypeVar("C", bound=type[BridgeClient])
_REGISTRY: dict[str, type[BridgeClient]] = {}
VENDOR_MODULES = ("app.devices.bridges.cisco_cms",)


def _vendor_key(vendor: str) -> str:
    return "".join(vendor.split()).lower()


def register(cls: C) -> C:
    """Class decorator: the client of `cls.vendor`'s bridges."""
    _REGISTRY[_vendor_key(cls.vendor)] = cls
    return cls


def client_class(vendor: str) -> type[BridgeClient]:
    for module in VENDOR_MODULES:
        importlib.import_module(module)
    cls = _REGISTRY.get(_vendor_key(vendor or ""))
    if cls is None:
        known = ", ".join(sorted(c.vendor for c in _REGISTRY.values()))
        raise BridgeNotSupported(_("VCOps cannot talk to %(vendor)s bridges yet (clients exist for: %(known)s).",
                                   vendor=vendor or "?", known=known))
    return cls
