-- Indexes and storage settings that the benchmark measured (bench/README.md). No function is
-- redefined here.

-- Reconciliation, support queries and the benchmark's checks look ledger transactions up by
-- order; without an index each lookup scans the whole table. Top-ups and purchases always
-- carry an order, adjustments may not: those rows stay out of the index.
create index if not exists ledger_transactions_order_id_idx
  on public.ledger_transactions (order_id) where order_id is not null;

-- Stripe sends pretty-printed events of 2-4 KB, past the 2 KB TOAST threshold, so every stored
-- raw body is compressed. lz4 does it in about a third of pglz's CPU time (12 against 28-40 µs
-- for a 2.3 KB payment_intent.succeeded, measured on 20,000 rows). Only where the server was
-- built with lz4; existing rows keep their compression.
do $$
begin
  if exists (
    select 1 from pg_settings
    where name = 'default_toast_compression' and 'lz4' = any (enumvals)
  ) then
    alter table public.webhook_events alter column raw_body set compression lz4;
  end if;
end
$$;
