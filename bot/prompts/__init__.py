"""Prompts: hygiene, defaults, version rules, translation; imports runtime and userapi only."""
