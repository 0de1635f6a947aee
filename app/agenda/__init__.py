"""The agenda of a meeting: the draft the secretariat edits, its published versions and their documents.

Above meetings (an agenda belongs to a meeting); below calendar (invitations carry the agenda). Tells the sites
about a new version through app.meetings.signals, never by importing the calendar."""
