"""Device credentials (SSH keys and passwords) encrypted at rest, their assignment to equipment, key rotation."""
