# CI-only stand-in for redis:7-alpine: Debian 12's Redis 7.0, run as the redis
# user with /data as its working directory, protected mode off (as the
# official image builds it), `redis-server` and `redis-cli` on PATH.
FROM nexus-ci/debian:bookworm
RUN apt-get update \
    && apt-get install -y --no-install-recommends redis-server redis-tools \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir /data && chown redis:redis /data
COPY redis-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
WORKDIR /data
VOLUME /data
EXPOSE 6379
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["redis-server"]
