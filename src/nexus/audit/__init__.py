"""Audit: an append-only record of who did what, written beside the change it records."""
