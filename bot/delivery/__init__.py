"""What a chat sees of a job: results, status, notices, keyboards; imports owner and below."""
