#!/bin/sh
# Run once by the postgres image's entrypoint, when the data volume is new.
#
# Creates the least-privilege role the app and workers connect as: it may
# read and write rows in every table the owner (POSTGRES_USER, which runs
# the migrations) creates, now or later, and use their sequences. It owns
# nothing, so it cannot ALTER or DROP a table, disable the audit log's
# append-only triggers, or TRUNCATE (docs/decisions/0018).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    --set app="$NEXUS_APP_DB_USER" --set owner="$POSTGRES_USER" --set db="$POSTGRES_DB" <<'SQL'
-- Read by psql itself, so the password is never on a command line.
\set password `cat "$NEXUS_APP_DB_PASSWORD_FILE"`
CREATE ROLE :"app" LOGIN PASSWORD :'password'
    NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
GRANT CONNECT ON DATABASE :"db" TO :"app";
GRANT USAGE ON SCHEMA public TO :"app";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"app";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO :"app";
SQL
