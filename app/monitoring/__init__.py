"""Operators' domain: probe agents, the exporters, the alert webhook, incidents and the live board."""
