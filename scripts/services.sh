#!/usr/bin/env bash
# Installs and starts every server the tests use, on this machine:
# PostgreSQL (wal_level=logical, for CDC), Redis, RabbitMQ, Mosquitto, NATS
# with JetStream, Apache Kafka (one KRaft node) and Apache Pulsar
# (standalone). It is safe to run again: a server that already answers
# on its port is left as it is.
#
# What it changes on a machine, when run as root:
#   - apt-get installs postgresql, redis-server, rabbitmq-server and mosquitto
#     when they are missing (Debian's packages), and chromium, the headless
#     browser of the web console's tests (e2e/);
#   - nats-server is built with `go install` from the Go module proxy, at the
#     version go.mod names (the same server the embedded mode runs), into
#     /usr/local/bin;
#   - Apache Kafka is resolved from Maven Central by scripts/kafka/pom.xml
#     (mvn, into ~/.m2) and run with the machine's Java by
#     scripts/kafka/start.sh (data and log in /tmp/eventkit-kafka; each
#     start is a new, empty node). Java and Maven are apt-get installed when
#     missing;
#   - Apache Pulsar is resolved from Maven Central by scripts/pulsar/pom.xml
#     and run standalone (broker, bookie and metadata store in one JVM) by
#     scripts/pulsar/start.sh (data and log in /tmp/eventkit-pulsar);
#   - PostgreSQL's main cluster gets conf.d/eventkit.conf (wal_level=logical,
#     replication slots, connections) and pg_hba.conf lines that trust local
#     TCP connections (127.0.0.1 and ::1), so the tests connect as `postgres`
#     without a password. Do not run it on a machine whose PostgreSQL holds
#     data that local users must not reach.
# Servers are started as background daemons, not as system services.
#
# Environment:
#   EVENTKIT_SKIP_INSTALL=1   install nothing; start what is installed
#   EVENTKIT_SKIP_SERVICES=1  do nothing (point the EVENTKIT_* variables of
#                             CONTRIBUTING.md at servers that already run)
#   EVENTKIT_SKIP_KAFKA=1     leave Kafka out (its JVM takes ~350 MB; the
#                             Kafka tests that need it skip, or fail under CI)
#   KAFKA_HEAP_OPTS           the Kafka JVM's heap (default -Xmx512m -Xms128m)
#   EVENTKIT_SKIP_PULSAR=1    leave Pulsar out (its JVM takes ~400 MB; the
#                             pulsar package's tests skip, or fail under CI)
#   PULSAR_HEAP_OPTS          the Pulsar JVM's memory (scripts/pulsar/start.sh)
# Exit status: 0 when every server answers at the end.
set -u
cd "$(dirname "$0")/.."

say() { printf 'services: %s\n' "$*"; }
if [ "${EVENTKIT_SKIP_SERVICES:-}" = 1 ]; then
  say "EVENTKIT_SKIP_SERVICES=1: starting nothing"
  exit 0
fi

up() { (echo >"/dev/tcp/127.0.0.1/$1") >/dev/null 2>&1; }
wait_port() { # port seconds
  local i
  for ((i = 0; i < $2 * 4; i++)); do up "$1" && return 0; sleep 0.25; done
  return 1
}
status=0
can_install=0
if [ "$(id -u)" = 0 ] && [ "${EVENTKIT_SKIP_INSTALL:-}" != 1 ]; then can_install=1; fi

# apt_install installs the Debian packages that are missing, with one
# apt-get update per run.
apt_updated=0
apt_install() {
  [ $can_install = 1 ] && command -v apt-get >/dev/null 2>&1 || return 1
  if [ $apt_updated = 0 ]; then
    say "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null || return 1
    apt_updated=1
  fi
  say "installing $*"
  # Package scripts may try to start the service (no init system here); the
  # servers are started below either way.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" \
    >/tmp/eventkit-apt.log 2>&1 || { tail -5 /tmp/eventkit-apt.log; return 1; }
}

missing=()
command -v pg_ctlcluster >/dev/null 2>&1 && ls /etc/postgresql/*/main >/dev/null 2>&1 || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v rabbitmq-server >/dev/null 2>&1 || missing+=(rabbitmq-server)
command -v mosquitto >/dev/null 2>&1 || missing+=(mosquitto)
# Headless Chromium for the web console's browser tests (e2e/).
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ "${EVENTKIT_SKIP_KAFKA:-}" != 1 ]; then
  command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null 2>&1 || missing+=(maven)
fi
if [ ${#missing[@]} -gt 0 ]; then
  apt_install "${missing[@]}" || say "could not install ${missing[*]} (not root, EVENTKIT_SKIP_INSTALL=1, or apt-get failed)"
fi

# Kafka starts in the background first (its JVM takes a while) and is
# waited for after the other servers.
kafka_pid=
if [ "${EVENTKIT_SKIP_KAFKA:-}" != 1 ] && ! up 9092 &&
  command -v java >/dev/null 2>&1 && command -v mvn >/dev/null 2>&1; then
  # Without installs, Maven works offline: Kafka starts only when its jars
  # are in ~/.m2 already.
  offline=
  [ $can_install = 1 ] || offline=1
  EVENTKIT_KAFKA_MVN_OFFLINE=$offline bash scripts/kafka/start.sh >/tmp/eventkit-kafka-start.log 2>&1 &
  kafka_pid=$!
fi
pulsar_pid=
if [ "${EVENTKIT_SKIP_PULSAR:-}" != 1 ] && ! up 6650 &&
  command -v java >/dev/null 2>&1 && command -v mvn >/dev/null 2>&1; then
  bash scripts/pulsar/start.sh >/tmp/eventkit-pulsar-start.log 2>&1 &
  pulsar_pid=$!
fi

# PostgreSQL
if ! up 5432 && command -v pg_ctlcluster >/dev/null 2>&1 && ls /etc/postgresql/*/main >/dev/null 2>&1; then
  ver=$(ls /etc/postgresql | sort -V | tail -1)
  etc=/etc/postgresql/$ver/main
  if [ -w "$etc" ] && [ ! -f "$etc/conf.d/eventkit.conf" ]; then
    say "configuring PostgreSQL $ver for the tests ($etc/conf.d/eventkit.conf, pg_hba.conf)"
    mkdir -p "$etc/conf.d"
    cat >"$etc/conf.d/eventkit.conf" <<'EOF'
# Written by eventkit's scripts/services.sh for its tests.
listen_addresses = 'localhost'
wal_level = logical
max_replication_slots = 32
max_wal_senders = 32
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
    grep -q '^include_dir' "$etc/postgresql.conf" || echo "include_dir = 'conf.d'" >>"$etc/postgresql.conf"
    if ! grep -q 'eventkit tests' "$etc/pg_hba.conf"; then
      {
        echo "# eventkit tests: trust local TCP connections (scripts/services.sh)"
        echo "host all all 127.0.0.1/32 trust"
        echo "host all all ::1/128 trust"
        echo "host replication all 127.0.0.1/32 trust"
        echo "host replication all ::1/128 trust"
        cat "$etc/pg_hba.conf"
      } >"$etc/pg_hba.conf.new" && mv "$etc/pg_hba.conf.new" "$etc/pg_hba.conf"
    fi
  fi
  say "starting PostgreSQL $ver"
  pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
  wait_port 5432 60 || { say "PostgreSQL did not start"; status=1; }
fi
if up 5432 && command -v psql >/dev/null 2>&1; then
  wal=$(psql -h 127.0.0.1 -U postgres -d postgres -Atc 'SHOW wal_level' 2>/dev/null)
  if [ "$wal" != logical ] && command -v pg_ctlcluster >/dev/null 2>&1; then
    ver=$(ls /etc/postgresql | sort -V | tail -1)
    say "setting wal_level=logical (was '$wal') and restarting PostgreSQL"
    psql -h 127.0.0.1 -U postgres -d postgres -qc "ALTER SYSTEM SET wal_level = logical" &&
      pg_ctlcluster --skip-systemctl-redirect "$ver" main restart
    wait_port 5432 60 || { say "PostgreSQL did not come back"; status=1; }
  fi
fi

# Redis
if ! up 6379 && command -v redis-server >/dev/null 2>&1; then
  say "starting Redis"
  mkdir -p /tmp/eventkit-redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /tmp/eventkit-redis --logfile /tmp/eventkit-redis/redis.log || true
  wait_port 6379 30 || { say "Redis did not start"; status=1; }
fi

# RabbitMQ
if ! up 5672 && command -v rabbitmq-server >/dev/null 2>&1; then
  say "starting RabbitMQ (takes a few seconds)"
  rabbitmq-server -detached >/dev/null 2>&1 || true
  wait_port 5672 120 || { say "RabbitMQ did not start"; status=1; }
fi

# Mosquitto: with no listener configured, Mosquitto 2 listens on loopback
# only and allows anonymous clients there.
if ! up 1883 && command -v mosquitto >/dev/null 2>&1; then
  say "starting Mosquitto"
  mkdir -p /tmp/eventkit-mosquitto
  printf 'persistence true\npersistence_location /tmp/eventkit-mosquitto/\nmax_queued_messages 100000\n' \
    >/tmp/eventkit-mosquitto/mosquitto.conf
  id mosquitto >/dev/null 2>&1 && chown mosquitto /tmp/eventkit-mosquitto
  mosquitto -d -c /tmp/eventkit-mosquitto/mosquitto.conf || true
  wait_port 1883 30 || { say "Mosquitto did not start"; status=1; }
fi

# NATS with JetStream: the nats-server version that go.mod names.
natsver=$(awk '$1 == "github.com/nats-io/nats-server/v2" { print $2 }' go.mod)
natsbin=$(command -v nats-server 2>/dev/null || true)
if ! up 4222; then
  if [ -z "$natsbin" ] || ! "$natsbin" --version 2>/dev/null | grep -q "${natsver#v}"; then
    if [ $can_install = 1 ] && command -v go >/dev/null 2>&1 && [ -n "$natsver" ]; then
      say "building nats-server $natsver (go install from the Go module proxy)"
      GOBIN=/usr/local/bin GOFLAGS= go install "github.com/nats-io/nats-server/v2@$natsver" &&
        natsbin=/usr/local/bin/nats-server
    fi
  fi
  if [ -n "$natsbin" ]; then
    say "starting NATS"
    mkdir -p /tmp/eventkit-nats
    nohup "$natsbin" -a 127.0.0.1 -p 4222 -js -sd /tmp/eventkit-nats \
      -l /tmp/eventkit-nats/nats.log >/dev/null 2>&1 &
    wait_port 4222 30 || { say "NATS did not start"; status=1; }
  fi
fi

if [ -n "$kafka_pid" ]; then
  wait "$kafka_pid" || say "Kafka did not start (scripts/kafka/start.sh):"
  sed 's/^/  /' /tmp/eventkit-kafka-start.log
fi
if [ -n "$pulsar_pid" ]; then
  wait "$pulsar_pid" || say "Pulsar did not start (scripts/pulsar/start.sh):"
  sed 's/^/  /' /tmp/eventkit-pulsar-start.log
fi

# One line per server, with its version.
report() { # name port version
  if up "$2"; then say "$1 up on 127.0.0.1:$2 ($3)"; else
    say "$1 NOT answering on 127.0.0.1:$2"
    status=1
  fi
}
report PostgreSQL 5432 "$(psql -h 127.0.0.1 -U postgres -d postgres -Atc "SELECT split_part(version(), ' ', 2) || ', wal_level=' || current_setting('wal_level')" 2>/dev/null)"
report Redis 6379 "$(redis-server --version 2>/dev/null | awk '{print $3}' | sed 's/^v=//')"
report RabbitMQ 5672 "$(dpkg-query -W -f '${Version}' rabbitmq-server 2>/dev/null)"
report Mosquitto 1883 "$(mosquitto -h 2>/dev/null | awk 'NR==1 {print $3}')"
report NATS 4222 "$( (command -v nats-server >/dev/null && nats-server --version) 2>/dev/null), JetStream"
if [ "${EVENTKIT_SKIP_KAFKA:-}" = 1 ]; then
  say "Kafka skipped (EVENTKIT_SKIP_KAFKA=1)"
else
  report Kafka 9092 "$(bash scripts/kafka/start.sh version 2>/dev/null), KRaft"
fi
if [ "${EVENTKIT_SKIP_PULSAR:-}" = 1 ]; then
  say "Pulsar skipped (EVENTKIT_SKIP_PULSAR=1)"
else
  report Pulsar 6650 "standalone, $(sed -n 's/.*<pulsar.version>\(.*\)<\/pulsar.version>.*/\1/p' scripts/pulsar/pom.xml)"
fi
exit $status
