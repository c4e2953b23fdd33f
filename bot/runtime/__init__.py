"""Process plumbing every layer may use: clocks, background tasks, log redaction."""
