-- Stripe Connect payouts (issue 14, second half): Express connected accounts onboard through an
-- account link and become usable when account.updated says payouts are enabled and the transfers
-- capability is active; a payout to one is a transfer (synchronous: created = the money is in the
-- connected account = processed), and transfer.reversed returns it to the wallet.
-- docs/decisions.md, "Stripe Connect payouts".
--
-- What changes from 20261204000300_payouts.sql:
-- - a Stripe payout account waits in status 'onboarding' (the contract's word) instead of
--   'pending'; the status check is re-created with it;
-- - settle.create_payout_account, settle.apply_payout_account_event and
--   settle.check_payout_terms are redefined (each says what it extends).
-- Nothing else: payouts to Stripe use the same request, send, move and ingest functions.

-- Section - payout account statuses
update public.payout_accounts set status = 'onboarding' where status = 'pending';
alter table public.payout_accounts drop constraint payout_accounts_status_check;
alter table public.payout_accounts add constraint payout_accounts_status_check
  check (status in ('onboarding', 'active', 'disabled'));
comment on column public.payout_accounts.status is 'onboarding: a Stripe connected account that cannot receive transfers yet (account.updated moves it); active: payouts may be sent; disabled: by its owner, or the account deauthorized the platform (final).';

-- settle.create_payout_account as defined in 20261204000300_payouts.sql; a Stripe account now
-- starts 'onboarding' (it was 'pending').
create or replace function settle.create_payout_account(
  p_id uuid, p_account_id uuid, p_created_by uuid, p_gateway text, p_type text, p_display text,
  p_last4 text, p_vpa_handle text, p_gateway_contact_id text, p_gateway_account_id text
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_row public.payout_accounts;
begin
  insert into public.payout_accounts (id, account_id, created_by, gateway, type, display, last4,
    vpa_handle, gateway_contact_id, gateway_account_id, status)
  values (p_id, p_account_id, p_created_by, p_gateway, p_type, p_display, p_last4, p_vpa_handle,
    p_gateway_contact_id, p_gateway_account_id,
    case when p_gateway = 'razorpayx' then 'active' else 'onboarding' end)
  on conflict (id) do nothing
  returning * into v_row;
  if v_row.id is null then
    select * into v_row from public.payout_accounts where id = p_id;
  end if;
  return settle.payout_account_json(v_row);
end
$$;

-- settle.apply_payout_account_event as defined in 20261204000300_payouts.sql, extended:
-- p_effect {"gateway_account_id", "payouts_enabled", "transfers" (the transfers capability's
-- status), "observed_at", "deauthorized"}. Active needs payouts_enabled and transfers 'active' (a
-- transfer to an account without the capability is refused by Stripe); anything less is
-- onboarding again. The state is the account as read from Stripe when its account.updated
-- arrived, versioned by observed_at (when the read started: a read started later sees a state at
-- least as new), else by the event's time. A state older than the last one applied, or for a
-- disabled account, changes nothing. A deauthorization (account.application.deauthorized)
-- disables the account for good, whatever its time.
create or replace function settle.apply_payout_account_event(p_effect jsonb, p_occurred_at timestamptz)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_row public.payout_accounts;
  v_status text := case
    when coalesce((p_effect ->> 'deauthorized')::boolean, false) then 'disabled'
    when coalesce((p_effect ->> 'payouts_enabled')::boolean, false)
         and coalesce(p_effect ->> 'transfers', 'active') = 'active' then 'active'
    else 'onboarding' end;
  v_at timestamptz := coalesce((p_effect ->> 'observed_at')::timestamptz, p_occurred_at);
begin
  select * into v_row from public.payout_accounts
  where gateway = 'stripe' and gateway_account_id = p_effect ->> 'gateway_account_id' for update;
  if v_row.id is null then
    return jsonb_build_object('outcome', 'ignored', 'detail', 'a connected account settle does not know');
  end if;
  if v_row.status = 'disabled' or v_row.status = v_status
     or (v_status <> 'disabled' and v_at is not null and v_row.status_event_at > v_at) then
    return jsonb_build_object('outcome', 'no_effect');
  end if;
  update public.payout_accounts
  set status = v_status, status_event_at = greatest(v_at, status_event_at),
      disabled_at = case when v_status = 'disabled' then now() else disabled_at end
  where id = v_row.id;
  return jsonb_build_object('outcome', 'applied');
end
$$;

-- settle.check_payout_terms as defined in 20261204000300_payouts.sql, with one refusal added:
-- Stripe Connect does not pay out INR (MARKETPLACE_FACTS 3.1: India is not a Connect region for
-- separate charges and transfers; INR payouts go through RazorpayX).
create or replace function settle.check_payout_terms(
  p_account public.payout_accounts, p_amount bigint, p_currency text
) returns public.payout_policies
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_policy public.payout_policies;
  v_fee bigint;
begin
  if not exists (select 1 from public.currencies where code = p_currency and enabled) then
    perform settle.fail(400, 'invalid_request', format('unsupported currency %s', coalesce(p_currency, 'null')));
  end if;
  if p_amount is null or p_amount < 1 or p_amount > 100000000000 then
    perform settle.fail(400, 'invalid_request', 'amount must be a positive number of minor units');
  end if;
  if p_account.id is null or not settle.has_role_on_account(p_account.account_id, 'owner') then
    perform settle.fail(404, 'not_found', 'payout account not found');
  end if;
  if p_account.gateway = 'razorpayx' and p_currency <> 'INR' then
    perform settle.fail(400, 'invalid_request', 'razorpayx pays out INR only');
  end if;
  if p_account.gateway = 'stripe' and p_currency = 'INR' then
    perform settle.fail(400, 'invalid_request', 'stripe connect does not pay out INR; use razorpayx');
  end if;
  v_policy := settle.payout_policy(p_account.account_id, p_currency);
  if v_policy.id is null then
    perform settle.fail(400, 'invalid_request', format('payouts are not offered in %s', p_currency));
  end if;
  v_fee := v_policy.fee_flat + (p_amount * v_policy.fee_bps) / 10000;
  if p_amount < v_policy.min_amount or p_amount <= v_fee then
    perform settle.fail(400, 'invalid_request', format(
      'a payout is at least %s minor units of %s (and more than its fee)', v_policy.min_amount, p_currency));
  end if;
  if p_account.status <> 'active' then
    perform settle.fail(409, 'payout_account_not_ready', format(
      'payout account %s is %s', p_account.id, p_account.status));
  end if;
  if settle.spending_blocked(p_account.account_id, p_currency) then
    perform settle.fail(409, 'spending_blocked', format(
      'the account''s %s wallet is blocked by an open dispute shortfall', p_currency));
  end if;
  return v_policy;
end
$$;

-- Section - privileges
-- The same grants as 0300 gave these functions (create or replace keeps them; restated so this
-- file reads whole).
revoke execute on function
  settle.create_payout_account(uuid, uuid, uuid, text, text, text, text, text, text, text),
  settle.apply_payout_account_event(jsonb, timestamptz),
  settle.check_payout_terms(public.payout_accounts, bigint, text)
  from public, anon, authenticated;
grant execute on function
  settle.create_payout_account(uuid, uuid, uuid, text, text, text, text, text, text, text),
  settle.apply_payout_account_event(jsonb, timestamptz)
  to service_role;
