#!/usr/bin/env bash
# Sets up the machine, builds turnpiked and starts it on its default backend (kernel sockets
# with io_uring) on loopback. With no credentials configured, turnpiked makes a development
# TURN REST secret and prints it with a ready-to-use username/password. Extra arguments go to
# turnpiked (e.g. --listening-port=3479 or -c /etc/turnserver.conf).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
ninja -C build turnpiked
exec ./build/turnpiked --listening-ip=127.0.0.1 --relay-ip=127.0.0.1 --allow-loopback-peers \
  --realm=turnpike.local "$@"
