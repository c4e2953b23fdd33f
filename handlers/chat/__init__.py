"""/start, /help, /history, /me and group switches; imports handlers.common."""
