"""What replicas share in the database: claims on work and updates, turns on status messages."""
