"""Image routers: imagine, buttons, describe, blend, photos; imports handlers.common."""
