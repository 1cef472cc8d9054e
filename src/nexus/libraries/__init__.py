"""Libraries and media: the reading domain (libraries, members, media, fragments, search)."""
