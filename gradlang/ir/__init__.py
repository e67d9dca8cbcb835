"""The typed intermediate representation: resolved names, explicit declarations, spans kept."""
