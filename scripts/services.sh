#!/usr/bin/env bash
# Brings up every server the tests use, when it is installed and not running:
# PostgreSQL (with wal_level=logical for CDC), Redis, RabbitMQ, Mosquitto and
# NATS with JetStream. It changes nothing that already runs as required.
# Exit status: 0 when every installed server answers at the end.
set -u

up() { (echo > "/dev/tcp/127.0.0.1/$1") >/dev/null 2>&1; }
wait_port() { # port seconds
  local i
  for ((i = 0; i < $2 * 4; i++)); do up "$1" && return 0; sleep 0.25; done
  return 1
}
say() { printf 'services: %s\n' "$*"; }
status=0

# PostgreSQL
if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
  ver=$(ls /etc/postgresql | sort -V | tail -1)
  if ! up 5432; then
    say "starting PostgreSQL $ver"
    pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
    wait_port 5432 30 || { say "PostgreSQL did not start"; status=1; }
  fi
  if up 5432 && command -v psql >/dev/null 2>&1; then
    wal=$(psql -h 127.0.0.1 -U postgres -d postgres -Atc 'SHOW wal_level' 2>/dev/null)
    if [ "$wal" != "logical" ]; then
      say "setting wal_level=logical (was '$wal') and restarting PostgreSQL"
      psql -h 127.0.0.1 -U postgres -d postgres -qc "ALTER SYSTEM SET wal_level = logical" &&
        pg_ctlcluster --skip-systemctl-redirect "$ver" main restart
      wait_port 5432 30 || { say "PostgreSQL did not come back"; status=1; }
      sleep 1
    fi
  fi
elif ! up 5432; then
  say "PostgreSQL is not installed; its tests will skip (or fail under CI=true)"
fi

# Redis
if ! up 6379; then
  if command -v redis-server >/dev/null 2>&1; then
    say "starting Redis"
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
    wait_port 6379 20 || { say "Redis did not start"; status=1; }
  else
    say "Redis is not installed"
  fi
fi

# RabbitMQ
if ! up 5672; then
  if command -v rabbitmq-server >/dev/null 2>&1; then
    say "starting RabbitMQ"
    rabbitmq-server -detached || true
    wait_port 5672 90 || { say "RabbitMQ did not start"; status=1; }
  else
    say "RabbitMQ is not installed"
  fi
fi

# Mosquitto
if ! up 1883; then
  if command -v mosquitto >/dev/null 2>&1; then
    say "starting Mosquitto"
    mosquitto -d -c /etc/mosquitto/mosquitto.conf || true
    wait_port 1883 20 || { say "Mosquitto did not start"; status=1; }
  else
    say "Mosquitto is not installed"
  fi
fi

# NATS with JetStream
if ! up 4222; then
  if [ -x /usr/sbin/nats-server ]; then
    say "starting NATS"
    mkdir -p /var/lib/nats-server
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
      -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log || true
    wait_port 4222 20 || { say "NATS did not start"; status=1; }
  else
    say "nats-server is not installed"
  fi
fi
exit $status
