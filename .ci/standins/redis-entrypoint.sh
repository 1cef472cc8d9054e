#!/bin/sh
# The official redis image's entrypoint, as far as Nexus relies on it.
set -eu
if [ "${1#-}" != "$1" ]; then
    set -- redis-server "$@"
fi
if [ "$1" = redis-server ]; then
    shift
    # Without a config file Redis refuses clients from other containers
    # unless protected mode is off; the official image compiles it off.
    set -- redis-server --protected-mode no "$@"
    if [ "$(id -u)" = 0 ]; then
        chown -R redis:redis .
        exec setpriv --reuid=redis --regid=redis --init-groups "$@"
    fi
fi
exec "$@"
