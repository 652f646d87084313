#!/usr/bin/env bash
# Runs the pgTAP suite (supabase/tests/database/*.test.sql) against an already migrated database.
#   usage: scripts/pgtap.sh <database-url> [extra pg_prove options, e.g. --verbose]
# Installs nothing: needs pg_prove and psql on PATH (Debian: postgresql-15-pgtap and
# libtap-parser-sourcehandler-pgtap-perl) and the pgtap extension available to the server.
# Each test file creates the extension inside its own transaction and rolls everything back.
# Exits non-zero if any test fails, a file errors, or a plan is not met.
set -euo pipefail

if [[ $# -lt 1 || -z "${1:-}" ]]; then
  echo "usage: $0 <database-url> [pg_prove options]" >&2
  exit 2
fi
url=$1
shift

if ! command -v pg_prove >/dev/null 2>&1; then
  echo "pgtap.sh: pg_prove not found (apt-get install postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl)" >&2
  exit 127
fi

cd "$(dirname "${BASH_SOURCE[0]}")/.."
shopt -s nullglob
tests=(supabase/tests/database/*.test.sql)
if [[ ${#tests[@]} -eq 0 ]]; then
  echo "pgtap.sh: no tests found in supabase/tests/database" >&2
  exit 1
fi

# pg_prove hands --dbname to psql, which accepts a full connection URL there.
exec pg_prove --dbname "$url" "$@" "${tests[@]}"
