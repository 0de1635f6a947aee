"""Work queued after commit (the outbox) and the workers' check-ins."""
