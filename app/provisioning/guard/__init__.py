"""The meeting-window guard: a run that would change equipment during a meeting at one of its sites is
refused unless overridden with a reason."""
