"""What runs before the routers: access, language, albums; may use the image helpers."""
