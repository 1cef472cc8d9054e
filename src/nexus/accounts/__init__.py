"""Accounts: users, passwords, tokens, roles, invites and the admin endpoints."""
