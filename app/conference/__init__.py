"""Conference room: the conference each booked meeting gets on its bridge (MCU), kept in step with the booking."""
