"""Calendar invites (RFC 5545/5546), their delivery by email, and ICS feeds."""
