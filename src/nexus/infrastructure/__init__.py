"""Infrastructure: database, Redis, queues, logging and local servers.

Everything here is plumbing that features build on; nothing here imports a
feature package (``nexus.api`` routes, ``nexus.jobs`` or a domain package).
"""
