"""Library entries: one choice a file, registered under its file stem."""
