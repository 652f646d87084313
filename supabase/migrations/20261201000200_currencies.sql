-- Currencies: the ISO 4217 codes settle accepts, their minor-unit exponents and top-up bounds.
-- Amounts everywhere are integers in the currency's minor unit; shared/money.ts holds the same
-- exponents for the code (tests/money_test.ts compares the two).

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

-- HUF and TWD came with PayPal: two decimals in ISO 4217 and in settle (amounts stay in minor
-- units), but PayPal takes them without decimals: shared/gateways/paypal/amounts.ts requires
-- multiples of 100 before sending. Their bounds are about the USD top-up's ($0.50 .. $10,000),
-- rounded to whole units.
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
  ('OMR', 3, 1000, 3800000),
  ('HUF', 2, 20000, 360000000),     -- 200 Ft .. 3,600,000 Ft
  ('TWD', 2, 1500, 30000000);       -- NT$15 .. NT$300,000

-- Section - privileges
-- Supabase's default privileges grant new public tables to anon and authenticated: take them back.
revoke all on public.currencies from anon, authenticated;
grant select on public.currencies to anon, authenticated;
