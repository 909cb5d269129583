# Creates the database and its two login roles, once: the postgres image runs (or sources) every *.sh in
# /docker-entrypoint-initdb.d when its data volume is empty, and never again. See deploy/compose.yaml.
#
#   INGEST_DB_OWNER          owns the database and its tables: `migrate`, `rebuild`, `events checkpoint`
#   MIGHTYCALL_SERVICE_ROLE  what `serve` logs in as; `migrate` grants it only what serve needs
#                            (service/database/grants.py): it may append to the log, never change it
#
# No `set -u` here: a sourced script shares the entrypoint's shell. ${VAR:?} stops the init instead.
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
    --set db="${INGEST_DB_NAME:?INGEST_DB_NAME is not set}" \
    --set owner="${INGEST_DB_OWNER:?INGEST_DB_OWNER is not set}" \
    --set owner_password="${INGEST_DB_OWNER_PASSWORD:?INGEST_DB_OWNER_PASSWORD is not set}" \
    --set service="${MIGHTYCALL_SERVICE_ROLE:?MIGHTYCALL_SERVICE_ROLE is not set}" \
    --set service_password="${INGEST_DB_SERVICE_PASSWORD:?INGEST_DB_SERVICE_PASSWORD is not set}" <<'SQL'
CREATE ROLE :"owner" LOGIN PASSWORD :'owner_password';
CREATE ROLE :"service" LOGIN PASSWORD :'service_password';
CREATE DATABASE :"db" OWNER :"owner";
-- Only these two may connect (PUBLIC may by default).
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"db" TO :"service";
SQL
