-- Rate limits: a token count per key (function scope + user or client IP) per fixed window,
-- shared by every function instance because it lives in Postgres.
--
-- One row per key, reset in place when its window has passed, so the table holds one row per
-- key seen recently, never one per window. Expired rows are deleted by settle.prune_rate_limits,
-- which settle.take_rate_limit also calls, now and then, for a small batch.

-- Section - buckets
-- Unlogged: counters are worth no WAL. After a crash the table comes back empty, which only
-- forgives the current window.
create unlogged table settle.rate_limits (
  key text primary key check (length(key) between 1 and 200),
  window_start timestamptz not null,
  window_end timestamptz not null check (window_end > window_start),
  hits integer not null check (hits > 0)
);
alter table settle.rate_limits enable row level security;
-- No policies: nobody reads or writes the table except through the functions below.
create index rate_limits_window_end_idx on settle.rate_limits (window_end);
comment on table settle.rate_limits is 'Requests counted per key in the current fixed window; written only by settle.take_rate_limit.';
comment on column settle.rate_limits.key is '<scope>:user:<uuid> or <scope>:ip:<address>, e.g. create-order:ip:203.0.113.7.';
comment on column settle.rate_limits.hits is 'Requests allowed in [window_start, window_end); refused requests are not counted.';

-- Deletes up to p_limit rows whose window ended before p_before; returns how many. Rows locked
-- by a request in flight are skipped. A deleted row and an expired one mean the same thing (the
-- next request starts a new window), so pruning never changes a decision.
create function settle.prune_rate_limits(
  p_before timestamptz default now() - interval '1 minute',
  p_limit integer default 10000
) returns integer
language plpgsql security definer set search_path = ''
as $$
declare
  v_deleted integer;
begin
  delete from settle.rate_limits r
  using (
    select o.key from settle.rate_limits o
    where o.window_end < p_before
    order by o.window_end
    limit p_limit
    for update skip locked
  ) old
  where r.key = old.key;
  get diagnostics v_deleted = row_count;
  return v_deleted;
end
$$;

-- Takes one token from every key, or from none: allowed is true only if each key has fewer
-- than its limit of hits in the current window. When one refuses, the tokens taken from the
-- others are given back (the subtransaction rolls back) and retry_after_seconds says when that
-- key's window ends. One statement for the caller: one round trip per request.
--
-- Windows are aligned to multiples of p_window_seconds since the epoch, at p_now (the function
-- instance's clock, injectable in tests; the database's when null). A row whose window has
-- ended restarts at 1. A row whose window is still open counts on, even for a caller whose
-- clock lags, so a skewed instance cannot reopen a closed window.
create function settle.take_rate_limit(
  p_keys text[],
  p_limits integer[],
  p_window_seconds integer,
  p_now timestamptz default null
) returns table (allowed boolean, retry_after_seconds integer, limited_key text)
language plpgsql security definer set search_path = ''
as $$
declare
  v_now timestamptz := coalesce(p_now, now());
  v_start timestamptz;
  v_end timestamptz;
  v_key text;
  v_limit integer;
  v_refused_key text;
  v_refused_until timestamptz;
begin
  if p_keys is null or cardinality(p_keys) not between 1 and 8
     or cardinality(p_limits) is distinct from cardinality(p_keys)
     or p_window_seconds is null or p_window_seconds not between 1 and 86400 then
    raise exception 'take_rate_limit: 1 to 8 keys, one limit per key, a window of 1 to 86400 s';
  end if;
  v_start := to_timestamp(floor(extract(epoch from v_now) / p_window_seconds) * p_window_seconds);
  v_end := v_start + make_interval(secs => p_window_seconds);

  begin
    -- Keys in sorted order: two requests sharing keys lock them in the same order.
    for v_key, v_limit in
      select k.key, k.lim from unnest(p_keys, p_limits) as k(key, lim) order by k.key
    loop
      if v_limit is null or v_limit < 1 then
        raise exception 'take_rate_limit: limit for % must be positive', v_key;
      end if;
      insert into settle.rate_limits as r (key, window_start, window_end, hits)
      values (v_key, v_start, v_end, 1)
      on conflict (key) do update
        set window_start = case when r.window_end <= v_now then excluded.window_start
                                else r.window_start end,
            window_end = case when r.window_end <= v_now then excluded.window_end
                              else r.window_end end,
            hits = case when r.window_end <= v_now then 1 else r.hits + 1 end
        where r.window_end <= v_now or r.hits < v_limit;
      if not found then
        -- The conflicting row is locked by the insert above; its window is still open.
        select r.window_end into v_refused_until from settle.rate_limits r where r.key = v_key;
        v_refused_key := v_key;
        raise exception using errcode = 'SR429', message = 'rate limited';
      end if;
    end loop;
  exception when sqlstate 'SR429' then
    return query select false,
      greatest(1, ceil(extract(epoch from (v_refused_until - v_now))))::integer, v_refused_key;
    return;
  end;

  -- About one call in a hundred sweeps a small batch of long-expired rows.
  if random() < 0.01 then
    perform settle.prune_rate_limits(now() - interval '1 minute', 100);
  end if;
  return query select true, 0, null::text;
end
$$;

comment on function settle.take_rate_limit(text[], integer[], integer, timestamptz) is
  'Takes one token from each key atomically (all or none); returns allowed, retry_after_seconds and the key that refused.';

-- Section - privileges
revoke execute on all functions in schema settle from public;
revoke all on table settle.rate_limits from public, anon, authenticated, service_role;
revoke execute on function settle.take_rate_limit(text[], integer[], integer, timestamptz),
  settle.prune_rate_limits(timestamptz, integer) from public, anon, authenticated;
grant execute on function settle.take_rate_limit(text[], integer[], integer, timestamptz),
  settle.prune_rate_limits(timestamptz, integer) to service_role;
