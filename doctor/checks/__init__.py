"""Checks: each judges facts and returns a ``Result``; none prints."""
