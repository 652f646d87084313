-- Catalog: plans and products with server-side prices in minor units.

create table public.plans (
  id text primary key check (id ~ '^[a-z0-9_-]{1,64}$'),
  name text not null check (length(name) between 1 and 200),
  amount bigint not null check (amount > 0 and amount <= 100000000000),
  currency text not null references public.currencies (code),
  billing_interval text not null check (billing_interval in ('day', 'week', 'month', 'year')),
  interval_count integer not null default 1 check (interval_count between 1 and 36),
  active boolean not null default true,
  created_at timestamptz not null default now()
);
alter table public.plans enable row level security;
comment on column public.plans.amount is 'Price per period in the currency''s minor unit.';

create policy "Anyone can read active plans" on public.plans
  for select to anon, authenticated using (active);

create table public.products (
  id text primary key check (id ~ '^[a-z0-9_-]{1,64}$'),
  name text not null check (length(name) between 1 and 200),
  amount bigint not null check (amount > 0 and amount <= 100000000000),
  currency text not null references public.currencies (code),
  active boolean not null default true,
  created_at timestamptz not null default now()
);
alter table public.products enable row level security;
comment on column public.products.amount is 'Price in the currency''s minor unit.';

create policy "Anyone can read active products" on public.products
  for select to anon, authenticated using (active);
