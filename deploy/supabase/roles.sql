-- The service's two login roles, in the Supabase database (run as `postgres`):
--   psql "$SUPABASE_DB_URL" -v ON_ERROR_STOP=1 -v owner=mightycall_owner -v owner_password=... \
--        -v service=mightycall_service -v service_password=... -f deploy/supabase/roles.sql
-- The owner runs `migrate`, `rebuild` and `events checkpoint`; `serve` logs in as the service role, to
-- which `migrate` grants only what it needs (MIGHTYCALL_SERVICE_ROLE, service/database/grants.py).
--
-- Why not `postgres` itself as the owner: Supabase sets default privileges so that every table
-- `postgres` creates in `public` is granted ALL to anon, authenticated and service_role
-- (supabase/postgres, migrations/db/init-scripts/00000000000000-initial-schema.sql). Tables created by
-- a role of their own get no such grants. docs/migrating-from-supabase.md has the details.
CREATE ROLE :"owner" LOGIN PASSWORD :'owner_password';
CREATE ROLE :"service" LOGIN PASSWORD :'service_password';
