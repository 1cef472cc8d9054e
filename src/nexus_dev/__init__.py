"""Developer tooling: ``make dev``'s servers and supervisor, ``make up``'s secrets and wait.

Not part of the service: nothing under ``nexus`` imports it, and the image
does not contain it. ``compose`` uses the standard library only.
"""
