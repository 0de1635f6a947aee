"""Talking to equipment: vendor profiles (Cisco xAPI over SSH first) and pinned SSH host keys."""
