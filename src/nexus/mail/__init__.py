"""E-mail: messages recorded in a transaction and sent by a durable job over SMTP."""
