-- Accounts and membership: every user's personal account (made by the auth hook below), team
-- accounts, who is a member and owner, and the entitlement the account's subscription gives.

-- Section - accounts
create table public.accounts (
  id uuid primary key default gen_random_uuid(),
  name text not null check (length(name) between 1 and 200),
  personal_owner_id uuid unique references auth.users (id) on delete cascade,
  default_currency text not null default 'INR' references public.currencies (code),
  created_at timestamptz not null default now(),
  plan text references public.plans (id),
  is_pro boolean not null default false,
  entitlement_ends_at timestamptz
);
alter table public.accounts enable row level security;
comment on column public.accounts.personal_owner_id is 'Set for the personal account every user gets; null for team accounts.';
comment on column public.accounts.plan is 'The plan of the account''s active subscription, null without one. Maintained by the subscriptions trigger only.';
comment on column public.accounts.is_pro is 'True while the account''s subscription is active. Maintained by the subscriptions trigger only.';

create table public.account_members (
  account_id uuid not null references public.accounts (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade,
  role text not null check (role in ('owner', 'member')),
  created_at timestamptz not null default now(),
  primary key (account_id, user_id)
);
alter table public.account_members enable row level security;
create index account_members_user_id_idx on public.account_members (user_id);

-- Section - membership
-- The membership test behind every "members can read" policy. security definer so policies on
-- account_members itself do not recurse. PL/pgSQL so its plan is cached per session: as a
-- non-inlinable SQL function (security definer, fixed search_path) its body would be parsed and
-- planned in every statement that checks a policy (about 50 µs each).
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

-- The account row lock that serialises changes of one account's state: payment methods' default
-- (concurrent inserts, set-defaults and deletes run one after another), subscription periods,
-- plan refunds. Taken first, before any row it protects.
create function settle.lock_account(p_account_id uuid) returns void
language sql security definer set search_path = ''
as $$
  select null from public.accounts where id = p_account_id for update
$$;

-- Section - new users
-- Every new auth user gets a personal account, owner membership and a wallet (the ledger file's
-- settle.ensure_wallet).
create function settle.handle_new_user() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  v_account uuid;
begin
  insert into public.accounts (name, personal_owner_id)
  values (coalesce(nullif(left(new.email, 200), ''), 'Personal account'), new.id)
  returning id into v_account;
  insert into public.account_members (account_id, user_id, role) values (v_account, new.id, 'owner');
  perform settle.ensure_wallet(v_account, 'INR');
  return new;
end
$$;
create trigger on_auth_user_created after insert on auth.users
  for each row execute function settle.handle_new_user();

-- Section - privileges
revoke execute on all functions in schema settle from public;
revoke all on public.accounts, public.account_members from anon, authenticated;
grant select on public.accounts, public.account_members to authenticated;
grant execute on function settle.is_member(uuid)
  to authenticated, payment_analyst, service_role;
grant execute on function settle.has_role_on_account(uuid, text) to authenticated, service_role;
grant execute on function settle.lock_account(uuid), settle.handle_new_user() to service_role;
