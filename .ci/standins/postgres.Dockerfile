# CI-only stand-in for postgres:15-alpine: Debian 12's PostgreSQL 15 behind an
# entrypoint that honours what the official image documents and Nexus uses:
# POSTGRES_USER, POSTGRES_PASSWORD / POSTGRES_PASSWORD_FILE, POSTGRES_DB,
# PGDATA, /docker-entrypoint-initdb.d/ (*.sh, *.sql) run once on a new cluster
# by a socket-only temporary server, then the server on all addresses with
# scram-sha-256 for TCP clients.
FROM nexus-ci/debian:bookworm
RUN mkdir -p /etc/postgresql-common \
    && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.conf \
    && apt-get update \
    && apt-get install -y --no-install-recommends postgresql-15 \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /docker-entrypoint-initdb.d /var/run/postgresql \
    && chown postgres:postgres /var/run/postgresql
ENV PATH=/usr/lib/postgresql/15/bin:$PATH \
    PGDATA=/var/lib/postgresql/data \
    LANG=C.UTF-8
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
VOLUME /var/lib/postgresql/data
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]
