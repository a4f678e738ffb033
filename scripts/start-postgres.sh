#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster on loopback and prints its URL.
# Usage: scripts/start-postgres.sh DIR [PORT]
set -euo pipefail
dir=$(realpath -m "${1:?usage: start-postgres.sh DIR [PORT]}")
port=${2:-55432}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$bin" ] || { echo "PostgreSQL server is not installed (apt-get install postgresql)" >&2; exit 1; }
mkdir -p "$dir"
chown postgres "$dir" 2>/dev/null || true
as_pg() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi; }
if [ ! -f "$dir/data/PG_VERSION" ]; then
  as_pg "'$bin/initdb' -D '$dir/data' -A trust -U postgres" >/dev/null
fi
as_pg "'$bin/pg_ctl' -D '$dir/data' -o \"-c listen_addresses=127.0.0.1 -p $port -k '$dir' -c fsync=off -c full_page_writes=off\" -l '$dir/pg.log' -w start" >/dev/null
echo "postgresql+psycopg://postgres@127.0.0.1:$port/postgres"
