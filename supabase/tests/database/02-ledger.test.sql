-- The double-entry ledger: append-only, balanced per transaction and currency, idempotent per
-- key, and the only thing that moves a wallet balance.
--
-- The balance check is a statement-level trigger (ledger_entries_post,
-- 20261201000500_ledger.sql): every INSERT statement's entries of a transaction must sum to zero per
-- currency, so an unbalanced insert fails at once, inside throws_ok's subtransaction, and the
-- rest of the file goes on from a clean state. Nothing is left to check at commit.
begin;
set local client_min_messages = warning;
create extension if not exists pgtap;
select plan(47);

create function pg_temp.wallet(p_uid uuid, p_currency text default 'INR') returns uuid
language sql stable security definer as $$
  select w.id from public.wallets w
  join public.accounts a on a.id = w.account_id
  where a.personal_owner_id = p_uid and w.currency = p_currency
$$;
-- Entries moving p_amount between the user's wallet (+) and a house account (-).
create function pg_temp.legs(p_uid uuid, p_amount bigint, p_house text default 'gateway:razorpay',
  p_currency text default 'INR') returns jsonb
language sql stable as $$
  select jsonb_build_array(
    jsonb_build_object('wallet_id', pg_temp.wallet(p_uid, p_currency), 'currency', p_currency, 'amount', p_amount),
    jsonb_build_object('system_account', p_house, 'currency', p_currency, 'amount', -p_amount))
$$;

-- Section - fixture
insert into auth.users (id, email) values
  ('00000000-0000-4000-8000-0000000002a1', 'ledger-u@example.test'),
  ('00000000-0000-4000-8000-0000000002b1', 'ledger-v@example.test');

-- Section - posting
select is(tests.balance('00000000-0000-4000-8000-0000000002a1'), 0::bigint, 'a new wallet starts at 0');
select isnt(
  settle.post_transaction('topup', 'ledger:topup-1', null, 'test top-up',
    pg_temp.legs('00000000-0000-4000-8000-0000000002a1', 1000)),
  null, 'a balanced post returns its transaction id');
select is(tests.balance('00000000-0000-4000-8000-0000000002a1'), 1000::bigint,
  'the balanced post credits the wallet');
select results_eq(
  $$select e.amount, e.system_account from public.ledger_entries e
    join public.ledger_transactions t on t.id = e.transaction_id
    where t.idempotency_key = 'ledger:topup-1' order by e.amount desc$$,
  $$values (1000::bigint, null::text), (-1000::bigint, 'gateway:razorpay'::text)$$,
  'the post wrote one wallet leg and one house leg');
select is(
  (select sum(e.amount)::bigint from public.ledger_entries e
   join public.ledger_transactions t on t.id = e.transaction_id where t.idempotency_key = 'ledger:topup-1'),
  0::bigint, 'the balanced post''s entries sum to zero');

select is(
  settle.post_transaction('topup', 'ledger:topup-1', null, 'replayed',
    pg_temp.legs('00000000-0000-4000-8000-0000000002a1', 9999)),
  null, 'posting an idempotency key a second time returns null');
select is(tests.balance('00000000-0000-4000-8000-0000000002a1'), 1000::bigint,
  'the second post under the same key credits nothing');
select is(
  (select count(*)::int from public.ledger_entries e join public.ledger_transactions t on t.id = e.transaction_id
   where t.idempotency_key = 'ledger:topup-1'),
  2, 'the second post under the same key writes no entries');

select isnt(
  settle.post_transaction('purchase', 'ledger:spend-1', null, 'spend',
    pg_temp.legs('00000000-0000-4000-8000-0000000002a1', -300, 'revenue:product')),
  null, 'a debit within the balance posts');
select is(tests.balance('00000000-0000-4000-8000-0000000002a1'), 700::bigint, 'the debit lowers the balance');

select throws_ok(
  $$select settle.post_transaction('purchase', 'ledger:overdraw', null, 'too much',
      pg_temp.legs('00000000-0000-4000-8000-0000000002a1', -701, 'revenue:product'))$$,
  'ST409', 'insufficient wallet balance', 'a debit beyond the balance is refused as insufficient funds');
select is(tests.balance('00000000-0000-4000-8000-0000000002a1'), 700::bigint,
  'the refused debit leaves the balance unchanged');
select is((select count(*)::int from public.ledger_transactions where idempotency_key = 'ledger:overdraw'), 0,
  'the refused debit records no transaction, so its key stays usable');
select isnt(
  settle.post_transaction('purchase', 'ledger:spend-all', null, 'spend the rest',
    pg_temp.legs('00000000-0000-4000-8000-0000000002a1', -700, 'revenue:product')),
  null, 'a debit of exactly the balance posts');
select is(tests.balance('00000000-0000-4000-8000-0000000002a1'), 0::bigint, 'the balance can reach exactly 0');
select isnt(
  settle.post_transaction('topup', 'ledger:topup-2', null, 'top-up again',
    pg_temp.legs('00000000-0000-4000-8000-0000000002a1', 700)),
  null, 'a second top-up posts');

-- Section - unbalanced transactions are refused
-- tgtype 4 | 0: AFTER INSERT FOR EACH STATEMENT; no deferred check is left to wait for commit.
select is(
  (select string_agg(format('%s %s %s', tgname, tgtype, tgdeferrable), ', ' order by tgname)
   from pg_trigger
   where tgrelid = 'public.ledger_entries'::regclass and not tgisinternal and tgtype & 4 = 4),
  'ledger_entries_post 4 f',
  'the balance check runs after every insert statement (one statement-level trigger, not deferred)');
select throws_ok(
  $sql$do $t$
    begin
      perform settle.post_transaction('adjustment', 'ledger:unbalanced', null, 'one leg only',
        jsonb_build_array(jsonb_build_object('wallet_id', pg_temp.wallet('00000000-0000-4000-8000-0000000002a1'),
          'currency', 'INR', 'amount', 500)));
    end
  $t$$sql$,
  'ST400', null, 'a transaction whose entries do not sum to zero is refused');
select is(tests.balance('00000000-0000-4000-8000-0000000002a1'), 700::bigint,
  'the refused unbalanced transaction leaves the balance unchanged');
select throws_ok(
  $sql$do $t$
    begin
      perform settle.post_transaction('adjustment', 'ledger:cross-currency', null, 'INR in, USD out',
        jsonb_build_array(
          jsonb_build_object('wallet_id', pg_temp.wallet('00000000-0000-4000-8000-0000000002a1'), 'currency', 'INR', 'amount', 500),
          jsonb_build_object('system_account', 'gateway:razorpay', 'currency', 'USD', 'amount', -500)));
    end
  $t$$sql$,
  'ST400', null, 'a transaction must balance in each currency, not only in total');
select throws_ok(
  $sql$do $t$
    declare v_tx uuid;
    begin
      insert into public.ledger_transactions (kind, idempotency_key) values ('adjustment', 'ledger:raw-unbalanced')
      returning id into v_tx;
      insert into public.ledger_entries (transaction_id, system_account, currency, amount)
      values (v_tx, 'revenue:plan', 'INR', 1);
    end
  $t$$sql$,
  'ST400', null, 'raw inserts that do not balance are refused as well');
select throws_ok(
  $$select settle.post_transaction('topup', 'ledger:wrong-currency', null, null,
      jsonb_build_array(
        jsonb_build_object('wallet_id', pg_temp.wallet('00000000-0000-4000-8000-0000000002a1'), 'currency', 'USD', 'amount', 100),
        jsonb_build_object('system_account', 'gateway:stripe', 'currency', 'USD', 'amount', -100)))$$,
  'ST400', 'ledger entry does not match its wallet''s account or currency',
  'a wallet entry in another currency than its wallet is refused');
select throws_ok(
  format($sql$do $t$
    declare v_tx uuid;
    begin
      insert into public.ledger_transactions (kind, idempotency_key) values ('adjustment', 'ledger:wrong-account')
      returning id into v_tx;
      insert into public.ledger_entries (transaction_id, wallet_id, account_id, currency, amount)
      values (v_tx, %L, %L, 'INR', 100);
    end
  $t$$sql$, pg_temp.wallet('00000000-0000-4000-8000-0000000002a1'), tests.personal('00000000-0000-4000-8000-0000000002b1')),
  'ST400', 'ledger entry does not match its wallet''s account or currency',
  'a wallet entry claiming another account than its wallet''s is refused');
select is(tests.balance('00000000-0000-4000-8000-0000000002b1'), 0::bigint,
  'the other account''s wallet is untouched');

-- Section - the ledger is append-only
select throws_ok('update public.ledger_entries set amount = amount * 2', 'ST400', null,
  'UPDATE on ledger_entries is refused');
select throws_ok('delete from public.ledger_entries', 'ST400', null, 'DELETE on ledger_entries is refused');
select throws_ok('truncate public.ledger_entries', 'ST400',
  'the ledger is append-only: TRUNCATE on ledger_entries is refused; post a correcting transaction',
  'TRUNCATE on ledger_entries is refused');
select throws_ok($$update public.ledger_transactions set description = 'rewritten'$$, 'ST400', null,
  'UPDATE on ledger_transactions is refused');
select throws_ok('delete from public.ledger_transactions', 'ST400', null, 'DELETE on ledger_transactions is refused');
select throws_ok('truncate public.ledger_transactions cascade', 'ST400',
  'the ledger is append-only: TRUNCATE on ledger_transactions is refused; post a correcting transaction',
  'TRUNCATE on ledger_transactions is refused');
select throws_ok('truncate public.accounts cascade', 'ST400', null,
  'a cascading TRUNCATE from accounts cannot wipe the ledger either');
select is(
  (select count(*)::int from public.ledger_entries e join public.ledger_transactions t on t.id = e.transaction_id
   where t.idempotency_key like 'ledger:%'),
  8, 'every entry posted above is still there');

-- service_role has no update/delete privilege on money tables: the ledger functions are the way.
select tests.login_service();
select throws_ok('update public.ledger_entries set amount = 1', '42501', null,
  'service_role cannot update ledger entries');
select throws_ok('delete from public.ledger_transactions', '42501', null,
  'service_role cannot delete ledger transactions');
select throws_ok('update public.wallets set balance = balance + 1000000', '42501', null,
  'service_role cannot set a wallet balance');
select tests.logout();

-- Section - wallets move only through the ledger
select throws_ok(
  format($$update public.wallets set balance = 123456 where id = %L$$, pg_temp.wallet('00000000-0000-4000-8000-0000000002a1')),
  'ST400', 'wallet balances change only through the ledger',
  'a direct balance update is refused, even for the table owner after ledger posts');
select is(tests.balance('00000000-0000-4000-8000-0000000002a1'), 700::bigint,
  'the balance is unchanged by the refused update');
select is(
  tests.balance('00000000-0000-4000-8000-0000000002a1'),
  (select sum(amount)::bigint from public.ledger_entries where wallet_id = pg_temp.wallet('00000000-0000-4000-8000-0000000002a1')),
  'the wallet balance equals the sum of its ledger entries');
select throws_ok(
  format($$update public.wallets set currency = 'USD' where id = %L$$, pg_temp.wallet('00000000-0000-4000-8000-0000000002a1')),
  'ST400', null, 'a wallet''s currency cannot change');
select throws_ok(
  format($$update public.wallets set account_id = %L where id = %L$$,
    tests.personal('00000000-0000-4000-8000-0000000002b1'), pg_temp.wallet('00000000-0000-4000-8000-0000000002a1')),
  'ST400', null, 'a wallet cannot move to another account');
select throws_ok(
  format($$insert into public.wallets (account_id, currency, balance) values (%L, 'USD', 100)$$,
    tests.personal('00000000-0000-4000-8000-0000000002a1')),
  'ST400', 'a wallet starts at zero', 'a wallet cannot be created with a nonzero balance');
select isnt(settle.ensure_wallet(tests.personal('00000000-0000-4000-8000-0000000002a1'), 'USD'), null,
  'ensure_wallet creates a missing wallet');
select is(tests.balance('00000000-0000-4000-8000-0000000002a1', 'USD'), 0::bigint, 'the created wallet is at 0');
select is(
  settle.ensure_wallet(tests.personal('00000000-0000-4000-8000-0000000002a1'), 'USD'),
  pg_temp.wallet('00000000-0000-4000-8000-0000000002a1', 'USD'),
  'ensure_wallet returns the existing wallet the second time');
select is((select count(*)::int from public.wallets where account_id = tests.personal('00000000-0000-4000-8000-0000000002a1')),
  2, 'ensure_wallet never makes a second wallet in one currency');

select is(
  (select count(*)::int from (select e.transaction_id from public.ledger_entries e
     group by e.transaction_id, e.currency having sum(e.amount) <> 0) u),
  0, 'every ledger transaction is balanced in every currency');
select lives_ok('set constraints all immediate', 'nothing deferred is left to fail at commit');

select * from finish();
rollback;
