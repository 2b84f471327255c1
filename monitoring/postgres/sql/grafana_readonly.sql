-- The read-only role Grafana's PostgreSQL datasource logs in with.
--
--   psql -v ON_ERROR_STOP=1 -v ro_password="$GRAFANA_PG_PASSWORD" -f grafana_readonly.sql
--
-- It may read exactly job_executions, queue_message_logs and user_memories. Those tables
-- are created later by rest_service's Alembic migrations, so besides granting on them when
-- they already exist, an event trigger grants SELECT whenever one of them is created
-- (again). Idempotent: safe to run on every start.

SELECT format('CREATE ROLE grafana_ro LOGIN PASSWORD %L', :'ro_password')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'grafana_ro')
\gexec
ALTER ROLE grafana_ro WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT PASSWORD :'ro_password';
ALTER ROLE grafana_ro SET default_transaction_read_only = on;
ALTER ROLE grafana_ro SET statement_timeout = '30s';

SELECT format('GRANT CONNECT ON DATABASE %I TO grafana_ro', current_database())
\gexec
GRANT USAGE ON SCHEMA public TO grafana_ro;
REVOKE CREATE ON SCHEMA public FROM grafana_ro;

CREATE OR REPLACE FUNCTION public.grafana_ro_grant_select() RETURNS event_trigger
LANGUAGE plpgsql AS $$
DECLARE
  obj record;
BEGIN
  FOR obj IN SELECT * FROM pg_event_trigger_ddl_commands()
             WHERE object_type IN ('table', 'partitioned table')
  LOOP
    IF obj.object_identity IN ('public.job_executions', 'public.queue_message_logs',
                               'public.user_memories') THEN
      EXECUTE format('GRANT SELECT ON %s TO grafana_ro', obj.object_identity);
    END IF;
  END LOOP;
END
$$;

DROP EVENT TRIGGER IF EXISTS grafana_ro_grant_select;
-- ALTER TABLE too: the partitioning migration (0003) builds the partitioned table under
-- another name and renames it into place, and a rename keeps no grants of the old table.
CREATE EVENT TRIGGER grafana_ro_grant_select ON ddl_command_end
  WHEN TAG IN ('CREATE TABLE', 'CREATE TABLE AS', 'ALTER TABLE')
  EXECUTE FUNCTION public.grafana_ro_grant_select();

DO $$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['job_executions', 'queue_message_logs', 'user_memories'] LOOP
    IF to_regclass('public.' || t) IS NOT NULL THEN
      EXECUTE format('GRANT SELECT ON public.%I TO grafana_ro', t);
    END IF;
  END LOOP;
END
$$;
