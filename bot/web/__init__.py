"""The HTTP server: health, webhooks, the Vary (Region) Mini App; imports delivery and below."""
