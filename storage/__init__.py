"""Persistence: repositories by subject, schema, migrations; imports nothing of bot or handlers."""
