-- docs/migrating-from-supabase.md, same database: the old functions' tables moved out of `public` into a schema
-- of their own (kept for reference, not exposed by the Supabase API), so that `migrate` can create the
-- service's tables under the same names. Run as `postgres`, after roles.sql:
--   psql "$SUPABASE_DB_URL" -v ON_ERROR_STOP=1 -v owner=mightycall_owner -f deploy/supabase/move-legacy-tables.sql
-- Moving a table keeps its indexes, constraints, grants and the views and foreign keys that use it.
-- From this moment the old functions fail on every webhook: switch MightyCall to the new service soon after.
BEGIN;
CREATE SCHEMA supabase_legacy;
ALTER TABLE IF EXISTS public.calls SET SCHEMA supabase_legacy;
ALTER TABLE IF EXISTS public.mightycall_sms_messages SET SCHEMA supabase_legacy;
ALTER TABLE IF EXISTS public.mightycall_recordings SET SCHEMA supabase_legacy;
ALTER TABLE IF EXISTS public.mightycall_reports SET SCHEMA supabase_legacy;
ALTER TABLE IF EXISTS public.phone_numbers SET SCHEMA supabase_legacy;
ALTER TABLE IF EXISTS public.integrations SET SCHEMA supabase_legacy;
ALTER TABLE IF EXISTS public.organizations SET SCHEMA supabase_legacy;
GRANT CREATE ON SCHEMA public TO :"owner";
GRANT USAGE ON SCHEMA supabase_legacy TO :"owner";
GRANT SELECT ON ALL TABLES IN SCHEMA supabase_legacy TO :"owner";
COMMIT;
