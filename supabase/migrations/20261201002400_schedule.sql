-- Scheduled jobs on Supabase: pg_cron POSTs to the reconcile, outbox-dispatch and escrow-settle
-- functions every minute and to gateway-audit hourly through pg_net, authenticated with the
-- service role key kept in Supabase Vault, and folds payment_stats deltas every minute.
--
-- Where pg_cron, pg_net or Vault are missing (vanilla Postgres, PGlite under `deno task dev`)
-- nothing is scheduled and the migration only creates the helper below; locally the dev
-- server's timer calls reconcile instead. Vault secrets read at each run (docs/operations.md):
--   settle_project_url       https://<project-ref>.supabase.co
--   settle_service_role_key  the project's service_role key (a JWT with role service_role)

-- Section - calling an edge function from SQL
-- Queues POST <project url>/functions/v1/<name> with the service role key and returns pg_net's
-- request id (the reply lands in net._http_response). Missing secrets raise, so the failure
-- shows in cron.job_run_details instead of an unauthenticated call. Resolved at run time: it
-- can exist where net and vault do not. Nobody but its owner (pg_cron's jobs) may call it.
create function settle.invoke_edge_function(p_name text, p_body jsonb default '{}'::jsonb)
returns bigint
language plpgsql set search_path = ''
as $$
declare
  v_url text;
  v_key text;
begin
  if p_name is null or p_name !~ '^[a-z0-9][a-z0-9-]{0,62}$' then
    perform settle.fail(400, 'invalid_request', 'not an edge function name');
  end if;
  select decrypted_secret into v_url from vault.decrypted_secrets where name = 'settle_project_url';
  select decrypted_secret into v_key from vault.decrypted_secrets where name = 'settle_service_role_key';
  if v_url is null or v_key is null then
    raise exception 'settle: set the Vault secrets settle_project_url and settle_service_role_key'
      using hint = 'select vault.create_secret(''https://<ref>.supabase.co'', ''settle_project_url'')';
  end if;
  return net.http_post(
    url := rtrim(v_url, '/') || '/functions/v1/' || p_name,
    body := coalesce(p_body, '{}'::jsonb),
    headers := jsonb_build_object('Content-Type', 'application/json',
      'Authorization', 'Bearer ' || v_key),
    -- A batch is bounded (RECONCILE_BATCH_SIZE); this only limits how long pg_net waits to
    -- record the reply.
    timeout_milliseconds := 60000
  );
end
$$;
revoke execute on function settle.invoke_edge_function(text, jsonb)
  from public, anon, authenticated, service_role;

-- Section - the edge functions' schedule (Supabase only)
-- reconcile, outbox-dispatch and escrow-settle every minute; gateway-audit hourly, each run
-- covering the time since the previous run (with an overlap), so a missed hour is caught up.
-- cron.schedule with a job name replaces a job of that name: re-running is harmless.
do $$
begin
  if (select count(*) from pg_available_extensions where name in ('pg_cron', 'pg_net')) < 2 then
    raise notice 'settle: pg_cron and pg_net are not available; reconcile, outbox-dispatch, escrow-settle and gateway-audit are not scheduled here';
    return;
  end if;
  if to_regnamespace('vault') is null then
    raise notice 'settle: Supabase Vault is missing; reconcile, outbox-dispatch, escrow-settle and gateway-audit are not scheduled here';
    return;
  end if;
  begin
    if to_regnamespace('extensions') is not null then
      create extension if not exists pg_net with schema extensions;
    else
      create extension if not exists pg_net;
    end if;
    create extension if not exists pg_cron;
    perform cron.schedule('settle-reconcile', '* * * * *',
      $job$select settle.invoke_edge_function('reconcile')$job$);
    perform cron.schedule('settle-outbox-dispatch', '* * * * *',
      $job$select settle.invoke_edge_function('outbox-dispatch')$job$);
    perform cron.schedule('settle-escrow-settle', '* * * * *',
      $job$select settle.invoke_edge_function('escrow-settle')$job$);
    perform cron.schedule('settle-gateway-audit', '17 * * * *',
      $job$select settle.invoke_edge_function('gateway-audit')$job$);
  exception when others then
    -- e.g. pg_cron installed but not in shared_preload_libraries: keep the migration (and the
    -- rest of the schema) applicable and say what to do.
    raise warning 'settle: could not schedule reconcile, outbox-dispatch, escrow-settle and gateway-audit (%); schedule them by hand (docs/operations.md)', sqlerrm;
  end;
end
$$;

-- Section - payment_stats compaction (wherever pg_cron is installed)
-- Folds the deltas every minute (payment_stats file); payment_stats is exact without it, the
-- delta table only grows.
do $$
begin
  if to_regnamespace('cron') is null then
    raise notice 'settle: pg_cron is not installed; payment_stats deltas are folded by settle.compact_payment_stats() when called';
    return;
  end if;
  begin
    perform cron.schedule('settle-payment-stats-compact', '* * * * *',
      $job$select settle.compact_payment_stats()$job$);
  exception when others then
    raise warning 'settle: could not schedule payment_stats compaction (%); call settle.compact_payment_stats() every minute', sqlerrm;
  end;
end
$$;
