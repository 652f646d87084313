-- Catalog: plans and products with server-side prices in minor units, and the terms a purchase
-- of them carries (the refund window, what a chargeback does to a plan).

create table public.plans (
  id text primary key check (id ~ '^[a-z0-9_-]{1,64}$'),
  name text not null check (length(name) between 1 and 200),
  amount bigint not null check (amount > 0 and amount <= 100000000000),
  currency text not null references public.currencies (code),
  billing_interval text not null check (billing_interval in ('day', 'week', 'month', 'year')),
  interval_count integer not null default 1 check (interval_count between 1 and 36),
  active boolean not null default true,
  created_at timestamptz not null default now(),
  refund_window_days integer not null default 14 check (refund_window_days between 0 and 3650),
  dispute_policy text not null default 'suspend' check (dispute_policy in ('keep', 'suspend'))
);
alter table public.plans enable row level security;
comment on column public.plans.amount is 'Price per period in the currency''s minor unit.';
comment on column public.plans.refund_window_days is 'Days after payment in which the buyer may refund the unused share of the period; after that only an operator (service role) can.';
comment on column public.plans.dispute_policy is 'What a chargeback does to a plan bought with the disputed payment while its funds are withdrawn: suspend the bought period (default) or keep it. A lost dispute ends it either way.';

create policy "Anyone can read active plans" on public.plans
  for select to anon, authenticated using (active);

create table public.products (
  id text primary key check (id ~ '^[a-z0-9_-]{1,64}$'),
  name text not null check (length(name) between 1 and 200),
  amount bigint not null check (amount > 0 and amount <= 100000000000),
  currency text not null references public.currencies (code),
  active boolean not null default true,
  created_at timestamptz not null default now(),
  refund_window_days integer not null default 14 check (refund_window_days between 0 and 3650)
);
alter table public.products enable row level security;
comment on column public.products.amount is 'Price in the currency''s minor unit.';
comment on column public.products.refund_window_days is 'Days after payment in which the buyer may refund the purchase; after that only an operator (service role) can.';

create policy "Anyone can read active products" on public.products
  for select to anon, authenticated using (active);

-- Section - privileges
revoke all on public.plans, public.products from anon, authenticated;
grant select on public.plans, public.products to anon, authenticated;
