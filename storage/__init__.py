"""Persistence on SQLite: tasks, users, chats and pending prompt requests."""
