"""Users, roles, login (sessions that end, two-factor sign-in), API tokens, the audit log and permission checks."""
