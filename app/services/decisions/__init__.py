"""Decisions and disclosures, the policies they are evaluated under, and the dashboard of them."""
