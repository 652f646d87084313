-- Foundation: the private schema, the analysts' role, and the conventions every file uses.
--
-- Errors raised for callers use SQLSTATE 'ST' + HTTP status (ST400, ST404, ST409, ...) with the
-- contract's error code in HINT, so the edge functions can map them without parsing messages.
--
-- The files of this directory are the schema, one concern each, in dependency order (each
-- function, view and trigger defined once, in its final form). They were re-based once, before
-- v0.1.0 (docs/decisions.md, "From v0.1.0 on, migrations are only added"); from then on a change
-- is a new migration, never an edit of one of these.

-- Section - private schema
-- settle.* holds internal functions. It is not exposed through PostgREST. A new function is
-- executable by PUBLIC (Postgres's global default; a per-schema default cannot take it back),
-- and authenticated may use the schema: so every file ends with
-- `revoke execute on all functions in schema settle from public` and grants each function to
-- whoever may call it.
create schema if not exists settle;
revoke all on schema settle from public;
grant usage on schema settle to authenticated, service_role;

-- Section - roles
-- Analysts get a role that reads the statistics and nothing of the tables behind them
-- (payment_stats and its siblings, the operators' views).
do $$
begin
  if not exists (select 1 from pg_roles where rolname = 'payment_analyst') then
    create role payment_analyst nologin;
  end if;
end
$$;
grant usage on schema settle to payment_analyst;

-- Section - helpers
-- Raises a caller-facing error: status is the HTTP status, code the contract's error code.
create function settle.fail(p_status int, p_code text, p_message text) returns void
language plpgsql volatile set search_path = ''
as $$
begin
  raise exception using errcode = 'ST' || p_status::text, message = p_message, hint = p_code;
end
$$;

create function settle.touch_updated_at() returns trigger
language plpgsql set search_path = ''
as $$
begin
  new.updated_at := now();
  return new;
end
$$;

-- Section - privileges
revoke execute on all functions in schema settle from public;
grant execute on function settle.fail(integer, text, text), settle.touch_updated_at()
  to service_role;
