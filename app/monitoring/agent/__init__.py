"""Monitoring room: the probe agent (`vcops probe`; its command is in app.monitoring.commands), ICMP echo
trains, endpoint checks, the step's store and its own /metrics.

Runs in a process of its own; reads the targets through app.monitoring.topology and writes states and history."""
