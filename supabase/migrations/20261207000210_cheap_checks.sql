-- The same CHECK constraints on public.orders and public.webhook_events, cheaper to run (issue 16).
-- Postgres reads every CHECK of a table from its stored node tree and prepares it again for each
-- INSERT or UPDATE statement (ExecRelCheck), so a payment's one-row UPDATE of orders paid for 16
-- constraints each time. A list written ARRAY['a', 'b', ...] is stored as one constant per element
-- and folded into an array on every statement; written '{a,b,...}'::text[] it is one constant.
-- Same names, same meaning (bench/README.md "This round: one function per event" has the cost).

-- Section - orders
alter table public.orders
  drop constraint orders_status_check,
  add constraint orders_status_check check (status = any (
    '{created,authorized,paid,partially_refunded,refunded,failed,expired}'::text[])),
  drop constraint orders_purpose_check,
  add constraint orders_purpose_check check (purpose = any (
    '{wallet_topup,plan,product,escrow}'::text[])),
  drop constraint orders_gateway_check,
  add constraint orders_gateway_check check (gateway = any ('{razorpay,stripe,paypal,wallet}'::text[])),
  drop constraint orders_dispute_status_check,
  add constraint orders_dispute_status_check check (dispute_status = any (
    '{open,won,lost,closed}'::text[])),
  drop constraint orders_check3,
  add constraint orders_check3 check (
    (status = any ('{paid,partially_refunded,refunded}'::text[])) <= (paid_at is not null)),
  drop constraint orders_unpaid_not_refunded_check,
  add constraint orders_unpaid_not_refunded_check check (
    status = any ('{paid,partially_refunded,refunded}'::text[]) or amount_refunded = 0),
  drop constraint orders_refund_status_check,
  add constraint orders_refund_status_check check (
    status <> all ('{paid,partially_refunded,refunded}'::text[]) or status = case
      when amount_refunded = 0 then 'paid'
      when amount_refunded < amount then 'partially_refunded'
      else 'refunded' end);

-- Section - webhook_events
alter table public.webhook_events
  drop constraint webhook_events_outcome_check,
  add constraint webhook_events_outcome_check check (outcome = any (
    '{received,applied,no_effect,ignored,unknown_order,mismatch,failed}'::text[])),
  drop constraint webhook_events_gateway_check,
  add constraint webhook_events_gateway_check check (gateway = any (
    '{razorpay,stripe,paypal,razorpayx,stripe_connect}'::text[]));
