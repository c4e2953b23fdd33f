"""Owner's rules: accounts, alerts, limits, payments, retention; imports jobs and below."""
