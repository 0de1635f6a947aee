"""Users, roles, login, API tokens, the audit log and permission checks."""
