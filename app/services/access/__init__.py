"""Access: API clients, web sessions and access links, rate limits, idempotency."""
