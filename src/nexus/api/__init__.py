"""HTTP plumbing shared by every endpoint: errors, validation, envelopes, ops.

Domain packages' ``routes.py`` use these; nothing here imports a domain package.
"""
