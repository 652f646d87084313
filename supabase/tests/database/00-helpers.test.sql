-- Helpers every pgTAP file uses, created once per test database before the other files run
-- (pg_prove takes the files in name order). Not a migration: they exist only in test databases.
-- Each switches the session like PostgREST does, local to the calling test's transaction.
begin;
set local client_min_messages = warning;
create extension if not exists pgtap;
select plan(6);

create schema if not exists tests;
grant usage on schema tests to public;

-- A signed-in user: role authenticated with the JWT claims PostgREST would set.
create or replace function tests.login(p_uid uuid) returns void language plpgsql as $$
begin
  perform set_config('role', 'authenticated', true);
  perform set_config('request.jwt.claims', jsonb_strip_nulls(jsonb_build_object(
    'sub', p_uid, 'role', 'authenticated', 'aud', 'authenticated'))::text, true);
end
$$;
create or replace function tests.login_anon() returns void language plpgsql as $$
begin
  perform set_config('role', 'anon', true);
  perform set_config('request.jwt.claims', '{"role": "anon"}', true);
end
$$;
-- The server: the service role, no user in the claims.
create or replace function tests.login_service() returns void language plpgsql as $$
begin
  perform set_config('role', 'service_role', true);
  perform set_config('request.jwt.claims', '{"role": "service_role"}', true);
end
$$;
-- Back to the connecting (owner) role with no claims.
create or replace function tests.logout() returns void language plpgsql as $$
begin
  perform set_config('role', 'none', true);
  perform set_config('request.jwt.claims', '', true);
end
$$;
-- A user's personal account id, readable whatever role is current.
create or replace function tests.personal(p_uid uuid) returns uuid
language sql stable security definer set search_path = '' as $$
  select id from public.accounts where personal_owner_id = p_uid
$$;
-- The balance of a user's personal wallet in a currency (null without one), whatever role is current.
create or replace function tests.balance(p_uid uuid, p_currency text default 'INR') returns bigint
language sql stable security definer set search_path = '' as $$
  select w.balance from public.wallets w
  join public.accounts a on a.id = w.account_id
  where a.personal_owner_id = p_uid and w.currency = p_currency
$$;
grant execute on all functions in schema tests to public;

select has_function('tests', 'login', array['uuid'], 'tests.login(uuid)');
select has_function('tests', 'login_anon', 'tests.login_anon()');
select has_function('tests', 'login_service', 'tests.login_service()');
select has_function('tests', 'logout', 'tests.logout()');
select has_function('tests', 'personal', array['uuid'], 'tests.personal(uuid)');
select has_function('tests', 'balance', array['uuid', 'text'], 'tests.balance(uuid, text)');

select * from finish();
commit;
