-- Local development data: plans, products and two demo users (alice and bob).
insert into public.plans (id, name, amount, currency, billing_interval, interval_count) values
  ('pro_monthly', 'Pro (monthly)', 29900, 'INR', 'month', 1),
  ('pro_yearly', 'Pro (yearly)', 299000, 'INR', 'year', 1),
  ('pro_monthly_usd', 'Pro (monthly, USD)', 900, 'USD', 'month', 1)
on conflict (id) do nothing;

insert into public.products (id, name, amount, currency) values
  ('ebook', 'The settle handbook (ebook)', 49900, 'INR'),
  ('sticker_pack', 'Sticker pack', 1500, 'USD'),
  ('tea_jp', 'Matcha tin', 1200, 'JPY')
on conflict (id) do nothing;

-- Demo users; the trigger on auth.users gives each a personal account and an INR wallet.
insert into auth.users (id, email) values
  ('00000000-0000-4000-8000-00000000a11c', 'alice@example.com'),
  ('00000000-0000-4000-8000-000000000b0b', 'bob@example.com')
on conflict (id) do nothing;
