-- Foundation: the private schema, currencies, accounts and membership, error conventions.
--
-- Errors raised for callers use SQLSTATE 'ST' + HTTP status (ST400, ST404, ST409, ...) with the
-- contract's error code in HINT, so the edge functions can map them without parsing messages.

-- Section - private schema
-- settle.* holds internal functions. It is not exposed through PostgREST.
create schema if not exists settle;
revoke all on schema settle from public;
grant usage on schema settle to authenticated, service_role;
alter default privileges in schema settle revoke execute on functions from public;

-- Section - currencies
create table public.currencies (
  code text primary key check (code ~ '^[A-Z]{3}$'),
  exponent smallint not null check (exponent in (0, 2, 3)),
  topup_min bigint not null check (topup_min > 0),
  topup_max bigint not null check (topup_max >= topup_min and topup_max <= 100000000000),
  enabled boolean not null default true
);
alter table public.currencies enable row level security;
comment on table public.currencies is 'ISO 4217 currencies settle accepts, with the minor-unit exponent (Razorpay table) and wallet top-up bounds in minor units.';
comment on column public.currencies.exponent is 'Digits after the decimal point: amounts are integers in 10^-exponent of the unit.';

create policy "Anyone can read currencies" on public.currencies
  for select to anon, authenticated using (true);

insert into public.currencies (code, exponent, topup_min, topup_max) values
  ('INR', 2, 100, 10000000),        -- ₹1 .. ₹1,00,000
  ('USD', 2, 50, 1000000),          -- $0.50 .. $10,000
  ('EUR', 2, 50, 1000000),
  ('GBP', 2, 30, 1000000),
  ('SGD', 2, 50, 1000000),
  ('AED', 2, 200, 3500000),
  ('AUD', 2, 50, 1500000),
  ('CAD', 2, 50, 1300000),
  ('JPY', 0, 50, 1500000),          -- zero-decimal: ¥50 .. ¥1,500,000
  ('KRW', 0, 700, 13000000),
  ('KWD', 3, 1000, 3000000),        -- three-decimal: 1.000 KD .. 3,000.000 KD
  ('BHD', 3, 1000, 3700000),
  ('OMR', 3, 1000, 3800000);

-- Section - accounts
create table public.accounts (
  id uuid primary key default gen_random_uuid(),
  name text not null check (length(name) between 1 and 200),
  personal_owner_id uuid unique references auth.users (id) on delete cascade,
  default_currency text not null default 'INR' references public.currencies (code),
  created_at timestamptz not null default now()
);
alter table public.accounts enable row level security;
comment on column public.accounts.personal_owner_id is 'Set for the personal account every user gets; null for team accounts.';

create table public.account_members (
  account_id uuid not null references public.accounts (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade,
  role text not null check (role in ('owner', 'member')),
  created_at timestamptz not null default now(),
  primary key (account_id, user_id)
);
alter table public.account_members enable row level security;
create index account_members_user_id_idx on public.account_members (user_id);

-- security definer so policies on account_members itself do not recurse.
-- The membership test behind every "members can read" policy. PL/pgSQL so its plan is cached
-- per session: as a non-inlinable SQL function (security definer, fixed search_path) its body
-- would be parsed and planned in every statement that checks a policy (about 50 µs each).
create function settle.is_member(p_account_id uuid) returns boolean
language plpgsql stable security definer set search_path = ''
as $$
begin
  return exists (
    select 1 from public.account_members m
    where m.account_id = p_account_id and m.user_id = auth.uid()
  );
end
$$;

create function settle.has_role_on_account(p_account_id uuid, p_role text) returns boolean
language sql stable security definer set search_path = ''
as $$
  select exists (
    select 1 from public.account_members m
    where m.account_id = p_account_id and m.user_id = auth.uid()
      and (p_role = 'member' or m.role = p_role)
  )
$$;

create policy "Members can read their accounts" on public.accounts
  for select to authenticated using (settle.is_member(id));
create policy "Members can read their accounts' memberships" on public.account_members
  for select to authenticated using (settle.is_member(account_id));

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
