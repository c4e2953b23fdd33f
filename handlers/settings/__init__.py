"""/settings and /language: routes and their menus; imports handlers.common."""
