"""The firmware store: images uploaded by technicians, checked and hashed, offered to firmware_upgrade.yml."""
