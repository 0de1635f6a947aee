"""Schedules: job templates launched at the times of a cron expression (read in local time)."""
