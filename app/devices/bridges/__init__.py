"""Talking to bridges (MCUs): the vendor-neutral BridgeClient (base.py), its HTTPS with a pinned certificate
(tls.py), the Cisco Meeting Server client (cisco_cms.py), and opening a bridge of the inventory (service.py)."""
