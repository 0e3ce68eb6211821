#!/bin/sh
# As the official image: arguments that start with `-` are nats-server's flags.
set -eu
case "${1:-}" in
  -*) set -- nats-server "$@" ;;
esac
exec "$@"
