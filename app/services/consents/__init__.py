"""Consents and objections, and the people they are about."""
