-- Customers and payment methods (Stripe): one gateway customer per account, saved cards,
-- exactly one default while any exist. The API and the gateway's webhooks converge on the same
-- functions.

-- Section - gateway customers
create table public.gateway_customers (
  account_id uuid not null references public.accounts (id) on delete cascade,
  gateway text not null check (gateway in ('stripe')),
  customer_id text not null check (length(customer_id) between 1 and 255),
  created_at timestamptz not null default now(),
  primary key (account_id, gateway),
  unique (gateway, customer_id)
);
alter table public.gateway_customers enable row level security;
comment on table public.gateway_customers is 'The gateway''s customer for an account, created on first need. Internal: no user policies.';

-- Section - payment methods
create table public.payment_methods (
  id uuid primary key default gen_random_uuid(),
  account_id uuid not null references public.accounts (id) on delete cascade,
  gateway text not null default 'stripe' check (gateway in ('stripe')),
  gateway_payment_method_id text not null check (length(gateway_payment_method_id) between 1 and 255),
  brand text check (length(brand) <= 50),
  last4 text check (last4 ~ '^[0-9]{4}$'),
  exp_month smallint check (exp_month between 1 and 12),
  exp_year smallint check (exp_year between 2000 and 2100),
  is_default boolean not null default false,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (gateway, gateway_payment_method_id)
);
alter table public.payment_methods enable row level security;
-- At most one default per account; the triggers below make it exactly one while any exist.
create unique index payment_methods_one_default_idx on public.payment_methods (account_id)
  where is_default;
create index payment_methods_account_id_idx on public.payment_methods (account_id, created_at);

create policy "Members can read their accounts' payment methods" on public.payment_methods
  for select to authenticated using (settle.is_member(account_id));

-- Every change to an account's defaults takes the account row lock first (settle.lock_account),
-- so concurrent inserts, set-defaults and deletes of one account run one after another.
create function settle.payment_method_before_write() returns trigger
language plpgsql set search_path = ''
as $$
begin
  perform settle.lock_account(new.account_id);
  if tg_op = 'UPDATE' then
    if new.account_id <> old.account_id or new.gateway_payment_method_id <> old.gateway_payment_method_id then
      perform settle.fail(400, 'invalid_request', 'a payment method''s account and gateway id are fixed');
    end if;
    -- The default moves by making another method default, never by unsetting it; the one
    -- exception is this trigger's own nested update, which raises settle.moving_default.
    if old.is_default and not new.is_default
       and (coalesce(current_setting('settle.moving_default', true), '') <> 'on'
            or pg_trigger_depth() < 2) then
      perform settle.fail(409, 'conflict', 'make another payment method the default instead');
    end if;
    new.updated_at := now();
  end if;
  if tg_op = 'INSERT' and not exists (
    select 1 from public.payment_methods where account_id = new.account_id and is_default
  ) then
    new.is_default := true;
  end if;
  if new.is_default and (tg_op = 'INSERT' or not old.is_default) then
    perform set_config('settle.moving_default', 'on', true);
    update public.payment_methods set is_default = false
    where account_id = new.account_id and is_default and id <> new.id;
    perform set_config('settle.moving_default', 'off', true);
  end if;
  return new;
end
$$;
create trigger payment_methods_before_write before insert or update on public.payment_methods
  for each row execute function settle.payment_method_before_write();

-- Every delete takes the account lock before the row goes, so a concurrent delete of the
-- method that would be promoted cannot slip between the delete and the promotion.
create function settle.payment_method_before_delete() returns trigger
language plpgsql set search_path = ''
as $$
begin
  perform settle.lock_account(old.account_id);
  return old;
end
$$;
create trigger payment_methods_before_delete before delete on public.payment_methods
  for each row execute function settle.payment_method_before_delete();

-- Deleting the default promotes the most recent remaining method.
create function settle.payment_method_after_delete() returns trigger
language plpgsql set search_path = ''
as $$
begin
  if old.is_default then
    perform settle.lock_account(old.account_id);
    update public.payment_methods set is_default = true
    where id = (
      select id from public.payment_methods
      where account_id = old.account_id
      order by created_at desc, id desc limit 1
    );
  end if;
  return null;
end
$$;
create trigger payment_methods_after_delete after delete on public.payment_methods
  for each row execute function settle.payment_method_after_delete();

-- Section - payment method effects (API and webhooks converge here)
create function settle.upsert_payment_method(
  p_account_id uuid, p_gateway_payment_method_id text, p_brand text, p_last4 text,
  p_exp_month int, p_exp_year int
) returns public.payment_methods
language plpgsql security definer set search_path = ''
as $$
declare
  v_row public.payment_methods;
begin
  insert into public.payment_methods (account_id, gateway_payment_method_id, brand, last4, exp_month, exp_year)
  values (p_account_id, p_gateway_payment_method_id, p_brand, p_last4, p_exp_month, p_exp_year)
  on conflict (gateway, gateway_payment_method_id) do update
    set brand = excluded.brand, last4 = excluded.last4,
        exp_month = excluded.exp_month, exp_year = excluded.exp_year
    where payment_methods.account_id = excluded.account_id
  returning * into v_row;
  if v_row.id is null then
    perform settle.fail(409, 'conflict', 'payment method belongs to another account');
  end if;
  return v_row;
end
$$;

-- Both take the account lock before touching any method row: the same order as the
-- triggers, so set-default and delete of one account queue instead of deadlocking.
create function settle.set_default_payment_method(
  p_gateway_payment_method_id text, p_account_id uuid default null
) returns boolean
language plpgsql security definer set search_path = ''
as $$
declare
  v_account uuid;
begin
  select account_id into v_account from public.payment_methods
  where gateway = 'stripe' and gateway_payment_method_id = p_gateway_payment_method_id
    and (p_account_id is null or account_id = p_account_id);
  if v_account is null then
    return false;
  end if;
  perform settle.lock_account(v_account);
  update public.payment_methods set is_default = true
  where gateway = 'stripe' and gateway_payment_method_id = p_gateway_payment_method_id
    and account_id = v_account and not is_default;
  return true;
end
$$;

create function settle.remove_payment_method(p_gateway_payment_method_id text) returns boolean
language plpgsql security definer set search_path = ''
as $$
declare
  v_account uuid;
  v_found boolean;
begin
  select account_id into v_account from public.payment_methods
  where gateway = 'stripe' and gateway_payment_method_id = p_gateway_payment_method_id;
  if v_account is null then
    return false;
  end if;
  perform settle.lock_account(v_account);
  delete from public.payment_methods
  where gateway = 'stripe' and gateway_payment_method_id = p_gateway_payment_method_id
  returning true into v_found;
  return coalesce(v_found, false);
end
$$;

-- Applies a payment-method webhook: {"action": "attached"|"updated"|"detached"|"default"|"ignore",
-- "customer", "payment_method", "brand", "last4", "exp_month", "exp_year", "detail"}. A customer
-- settle does not know is not settle's object: 'ignored', never an error (Stripe would retry it
-- for days).
create function settle.apply_payment_method_event(p_effect jsonb) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_account uuid;
  v_action text := p_effect ->> 'action';
  v_pm text := p_effect ->> 'payment_method';
begin
  if v_action = 'detached' then
    return jsonb_build_object('outcome',
      case when settle.remove_payment_method(v_pm) then 'applied' else 'no_effect' end);
  elsif v_action = 'ignore' then
    return jsonb_build_object('outcome', 'ignored', 'detail', p_effect ->> 'detail');
  end if;
  if v_pm is null then
    return jsonb_build_object('outcome', 'ignored', 'detail', 'event names no payment method');
  end if;
  select account_id into v_account from public.gateway_customers
  where gateway = 'stripe' and customer_id = p_effect ->> 'customer';
  if v_account is null then
    return jsonb_build_object('outcome', 'ignored', 'detail', 'a customer settle does not know');
  end if;
  if v_action = 'attached' then
    -- A card already saved for another account is recorded, never moved (and never an error
    -- that would lose the event).
    if exists (select 1 from public.payment_methods
               where gateway = 'stripe' and gateway_payment_method_id = v_pm and account_id <> v_account) then
      return jsonb_build_object('outcome', 'mismatch',
        'detail', format('payment method %s belongs to another account', v_pm));
    end if;
    perform settle.upsert_payment_method(v_account, v_pm, p_effect ->> 'brand', p_effect ->> 'last4',
      (p_effect ->> 'exp_month')::int, (p_effect ->> 'exp_year')::int);
    return jsonb_build_object('outcome', 'applied');
  elsif v_action = 'updated' then
    return settle.update_payment_method_card(v_account, p_effect);
  elsif v_action = 'default' then
    return jsonb_build_object('outcome',
      case when settle.set_default_payment_method(v_pm, v_account) then 'applied' else 'no_effect' end);
  end if;
  return jsonb_build_object('outcome', 'ignored');
end
$$;

-- payment_method.updated (new expiry, a reissued card's last4): updates the card stored for the
-- customer's account, only where something changed. A card not stored (never attached, or
-- detached since) is not created: the event is a change, not an attachment.
create function settle.update_payment_method_card(p_account_id uuid, p_effect jsonb) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_pm text := p_effect ->> 'payment_method';
  v_owner uuid;
  v_changed boolean;
begin
  select account_id into v_owner from public.payment_methods
  where gateway = 'stripe' and gateway_payment_method_id = v_pm;
  if v_owner is null then
    return jsonb_build_object('outcome', 'no_effect', 'detail', format('no stored card %s', v_pm));
  elsif v_owner <> p_account_id then
    return jsonb_build_object('outcome', 'mismatch',
      'detail', format('payment method %s belongs to another account', v_pm));
  end if;
  update public.payment_methods
  set brand = p_effect ->> 'brand', last4 = p_effect ->> 'last4',
      exp_month = (p_effect ->> 'exp_month')::int, exp_year = (p_effect ->> 'exp_year')::int
  where gateway = 'stripe' and gateway_payment_method_id = v_pm and account_id = p_account_id
    and (brand, last4, exp_month, exp_year) is distinct from (p_effect ->> 'brand',
      p_effect ->> 'last4', (p_effect ->> 'exp_month')::int, (p_effect ->> 'exp_year')::int)
  returning true into v_changed;
  return jsonb_build_object('outcome', case when v_changed then 'applied' else 'no_effect' end);
end
$$;

-- Section - privileges
revoke execute on all functions in schema settle from public;
revoke all on public.gateway_customers, public.payment_methods from anon, authenticated;
grant select on public.payment_methods to authenticated;
grant execute on function settle.payment_method_before_write(),
  settle.payment_method_before_delete(), settle.payment_method_after_delete(),
  settle.upsert_payment_method(uuid, text, text, text, integer, integer),
  settle.set_default_payment_method(text, uuid), settle.remove_payment_method(text),
  settle.apply_payment_method_event(jsonb), settle.update_payment_method_card(uuid, jsonb)
  to service_role;
