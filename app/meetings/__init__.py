"""Meetings: booking with clash and capacity checks, recurrence, agenda and documents, attendance."""
