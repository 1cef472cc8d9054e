"""Nexus's version: one place, read by the package metadata and the API document."""

__version__ = "0.1.0"
