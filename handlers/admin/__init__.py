"""The owner's console: routes, actions, texts (admins only); imports handlers.common."""
