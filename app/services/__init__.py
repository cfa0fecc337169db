"""Use cases. Each write use case is one transaction, begun and committed here."""
