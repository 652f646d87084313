-- What the user roles (anon, authenticated, payment_analyst) may do, as an allowlist over every
-- object in public and settle: tables, views, sequences, functions and the schemas themselves.
-- The default for an object the allowlist does not name is "no privilege at all", so a new
-- table, view, sequence or function that a migration (anyone's) forgets to revoke fails here
-- until it is revoked or added below on purpose. Privileges through PUBLIC count (has_*_privilege
-- includes them), column grants count (has_any_column_privilege), extension members (pgTAP
-- itself) do not. The local bootstrap reproduces Supabase's default privileges, so what leaks on
-- Supabase leaks here.
begin;
set local client_min_messages = warning;
create extension if not exists pgtap;
select plan(8);

-- Every privilege a user role holds in public and settle, as '<role> <privilege> <object>'.
create function pg_temp.user_privileges() returns setof text language sql stable as $$
  with roles(r) as (values ('anon'), ('authenticated'), ('payment_analyst')),
  mine as (
    select c.oid, c.relkind, format('%I.%I', n.nspname, c.relname) as name
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname in ('public', 'settle') and c.relkind in ('r', 'p', 'v', 'm', 'f', 'S')
      and not exists (select 1 from pg_depend d where d.classid = 'pg_class'::regclass
                      and d.objid = c.oid and d.deptype = 'e')
  )
  select format('%s %s %s', r, priv, name) from mine, roles,
    unnest(array['SELECT', 'INSERT', 'UPDATE', 'REFERENCES']) priv
  where relkind <> 'S' and has_any_column_privilege(r, oid, priv)
  union all
  select format('%s %s %s', r, priv, name) from mine, roles,
    unnest(array['DELETE', 'TRUNCATE', 'TRIGGER']) priv
  where relkind <> 'S' and has_table_privilege(r, oid, priv)
  union all
  select format('%s %s %s', r, priv, name) from mine, roles,
    unnest(array['USAGE', 'SELECT', 'UPDATE']) priv
  where relkind = 'S' and has_sequence_privilege(r, oid, priv)
  union all
  select format('%s EXECUTE %s', r, p.oid::regprocedure) from pg_proc p, roles
  where p.pronamespace in ('public'::regnamespace, 'settle'::regnamespace)
    and not exists (select 1 from pg_depend d where d.classid = 'pg_proc'::regclass
                    and d.objid = p.oid and d.deptype = 'e')
    and has_function_privilege(r, p.oid, 'execute')
  union all
  select format('%s %s schema %s', r, priv, s) from roles,
    unnest(array['public', 'settle']) s, unnest(array['USAGE', 'CREATE']) priv
  where has_schema_privilege(r, s, priv)
$$;

select set_eq(
  $$select p from pg_temp.user_privileges() p where split_part(p, ' ', 2) <> 'EXECUTE'
      and p not like '% schema %'$$,
  array[
    'anon SELECT public.currencies', 'anon SELECT public.plans', 'anon SELECT public.products',
    'authenticated SELECT public.currencies', 'authenticated SELECT public.plans',
    'authenticated SELECT public.products', 'authenticated SELECT public.accounts',
    'authenticated SELECT public.account_members', 'authenticated SELECT public.wallets',
    'authenticated SELECT public.orders', 'authenticated SELECT public.ledger_entries',
    'authenticated SELECT public.ledger_transactions', 'authenticated SELECT public.payment_methods',
    'authenticated SELECT public.subscriptions', 'authenticated SELECT public.subscription_periods',
    'authenticated SELECT public.refunds', 'authenticated SELECT public.payment_stats',
    'authenticated SELECT settle.payment_stats_visible',
    'payment_analyst SELECT public.payment_stats', 'payment_analyst SELECT settle.payment_stats_visible',
    -- refunds made at the gateway that settle could not simply count (operators and analysts)
    'payment_analyst SELECT public.refund_exceptions',
    -- spending the wallet: members read their charges (RLS); spending stats like payment_stats
    'authenticated SELECT public.wallet_charges', 'authenticated SELECT public.wallet_charge_refunds',
    'authenticated SELECT public.wallet_spending_stats',
    'authenticated SELECT settle.wallet_spending_stats_visible',
    'payment_analyst SELECT public.wallet_spending_stats',
    'payment_analyst SELECT settle.wallet_spending_stats_visible',
    -- marketplace escrow: members of either side read engagements (RLS), signed-in users the
    -- split policy; escrow stats like payment_stats
    'authenticated SELECT public.engagements', 'authenticated SELECT public.escrow_policies',
    'authenticated SELECT public.escrow_stats', 'authenticated SELECT settle.escrow_stats_visible',
    'payment_analyst SELECT public.escrow_stats', 'payment_analyst SELECT settle.escrow_stats_visible',
    -- payouts: members read their payout accounts, payouts and policies (RLS); payout stats
    'authenticated SELECT public.payout_policies', 'authenticated SELECT public.payout_accounts',
    'authenticated SELECT public.payouts', 'authenticated SELECT public.payout_stats',
    'authenticated SELECT settle.payout_stats_visible',
    'payment_analyst SELECT public.payout_stats', 'payment_analyst SELECT settle.payout_stats_visible',
    -- disputes: members read theirs (RLS); dispute stats like payment_stats; the operators' view
    'authenticated SELECT public.disputes', 'authenticated SELECT public.dispute_stats',
    'authenticated SELECT settle.dispute_stats_visible',
    'payment_analyst SELECT public.dispute_stats', 'payment_analyst SELECT settle.dispute_stats_visible',
    'payment_analyst SELECT public.open_disputes'],
  'user roles may read exactly the allowed tables and views, write none, and use no sequence');

select set_eq(
  $$select p from pg_temp.user_privileges() p where split_part(p, ' ', 2) = 'EXECUTE'$$,
  array[
    'authenticated EXECUTE settle.is_member(uuid)',
    'authenticated EXECUTE settle.has_role_on_account(uuid,text)',
    'authenticated EXECUTE settle.create_order(text,text,text,text,bigint,text,uuid,text,text)',
    'authenticated EXECUTE settle.create_order(text,text,text,text,bigint,text,uuid,text,text,uuid,integer)',
    'authenticated EXECUTE settle.cancel_subscription(uuid,boolean)',
    'authenticated EXECUTE settle.request_refund(uuid,bigint,text,text,text)',
    'authenticated EXECUTE settle.can_read_payment_stats(uuid)',
    'payment_analyst EXECUTE settle.is_member(uuid)',
    'payment_analyst EXECUTE settle.can_read_payment_stats(uuid)',
    'payment_analyst EXECUTE settle.ledger_audit()',
    -- paying an order from the wallet (create-order with gateway wallet), as the owner
    'authenticated EXECUTE settle.pay_order_from_wallet(text,text,text,uuid,text,text)',
    -- marketplace escrow, as the payer or payee (auth.uid() decides what each may do)
    'authenticated EXECUTE settle.create_engagement(uuid,uuid,bigint,text,text,text,integer,text,text)',
    'authenticated EXECUTE settle.create_escrow_order(text,uuid,uuid,text,text)',
    'authenticated EXECUTE settle.complete_engagement(uuid,integer)',
    'authenticated EXECUTE settle.dispute_engagement(uuid,text)',
    'authenticated EXECUTE settle.cancel_engagement(uuid)',
    'authenticated EXECUTE settle.engagement_json(engagements)',
    -- payouts, as the owner of the payee account
    'authenticated EXECUTE settle.request_payout(uuid,bigint,text,text,text)',
    'authenticated EXECUTE settle.disable_payout_account(uuid)'],
  'user roles may execute exactly the functions meant for them, in public and settle');

select set_eq(
  $$select p from pg_temp.user_privileges() p where p like '% schema %'$$,
  array['anon USAGE schema public', 'authenticated USAGE schema public',
        'authenticated USAGE schema settle', 'payment_analyst USAGE schema public',
        'payment_analyst USAGE schema settle'],
  'user roles use the schemas and create nothing in them; anon cannot even see settle');

-- The identity sequences behind webhook_events and ledger_entries, as the API roles.
select tests.login_anon();
select throws_ok($$select nextval('public.webhook_events_id_seq')$$, '42501', null,
  'anon cannot draw from an identity sequence');
select tests.login('00000000-0000-4000-8000-0000000001a1');
select throws_ok($$select nextval('public.ledger_entries_id_seq')$$, '42501', null,
  'authenticated cannot draw from an identity sequence');
select throws_ok($$select last_value from public.outbox_deliveries_id_seq$$, '42501', null,
  'authenticated cannot read a sequence (how many rows exist)');
select tests.logout();

-- A migration that forgets its revoke: a table with an identity column in public (Supabase's
-- default privileges grant both to the API roles), a settle function (PUBLIC may execute it)
-- and a column grant. The check above sees every one of them.
create table public.tests_forgot_revoke (id bigint generated always as identity primary key);
create function settle.tests_forgot_revoke() returns int language sql as 'select 1';
grant update (status) on public.orders to authenticated;
select ok(
  (select count(*) from pg_temp.user_privileges() p where p like '%tests_forgot_revoke%') > 0,
  'an unrevoked new table and function show up as privileges not in the allowlist');
select bag_eq(
  $$select p from pg_temp.user_privileges() p
    where p like 'anon % public.tests_forgot_revoke_id_seq' or p like 'authenticated UPDATE public.orders'
      or p like 'authenticated EXECUTE settle.tests_forgot_revoke()'$$,
  array['anon USAGE public.tests_forgot_revoke_id_seq', 'anon SELECT public.tests_forgot_revoke_id_seq',
        'anon UPDATE public.tests_forgot_revoke_id_seq', 'authenticated UPDATE public.orders',
        'authenticated EXECUTE settle.tests_forgot_revoke()'],
  'a new sequence, a column grant and a new function each show up');

select * from finish();
rollback;
