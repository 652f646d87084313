-- The words the marketplace, disputes, payouts and PayPal migrations that follow need, in one
-- place, so each of them adds its own tables and functions without redefining a shared check:
-- a third gateway (paypal), the payout gateways' webhooks (razorpayx, stripe_connect), escrow
-- orders, the ledger kinds of escrow, disputes and payouts, and their outbox subjects.
-- (Accepting a word here enables nothing: settle.create_order still names the gateways it takes.)

-- Section - gateways
alter table public.orders drop constraint orders_gateway_check;
alter table public.orders add constraint orders_gateway_check
  check (gateway in ('razorpay', 'stripe', 'paypal', 'wallet'));
alter table public.refunds drop constraint refunds_gateway_check;
alter table public.refunds add constraint refunds_gateway_check
  check (gateway in ('razorpay', 'stripe', 'paypal', 'wallet'));
alter table public.gateway_refund_holds drop constraint gateway_refund_holds_gateway_check;
alter table public.gateway_refund_holds add constraint gateway_refund_holds_gateway_check
  check (gateway in ('razorpay', 'stripe', 'paypal'));
alter table public.webhook_events drop constraint webhook_events_gateway_check;
alter table public.webhook_events add constraint webhook_events_gateway_check
  check (gateway in ('razorpay', 'stripe', 'paypal', 'razorpayx', 'stripe_connect'));
alter table public.gateway_discrepancies drop constraint gateway_discrepancies_gateway_check;
alter table public.gateway_discrepancies add constraint gateway_discrepancies_gateway_check
  check (gateway in ('razorpay', 'stripe', 'paypal', 'razorpayx'));

-- Section - order purposes
alter table public.orders drop constraint orders_purpose_check;
alter table public.orders add constraint orders_purpose_check
  check (purpose in ('wallet_topup', 'plan', 'product', 'escrow'));

-- Section - ledger kinds
alter table public.ledger_transactions drop constraint ledger_transactions_kind_check;
alter table public.ledger_transactions add constraint ledger_transactions_kind_check check (kind in (
  'topup', 'purchase', 'refund', 'adjustment',
  'wallet_charge', 'wallet_hold', 'wallet_release', 'wallet_refund',
  'escrow_funding', 'escrow_settlement', 'escrow_refund',
  'dispute_withdrawal', 'dispute_reinstatement', 'dispute_fee',
  'payout', 'payout_sent', 'payout_return'
));

-- Section - outbox subjects
alter table public.outbox_events drop constraint outbox_events_subject_type_check;
alter table public.outbox_events add constraint outbox_events_subject_type_check
  check (subject_type in (
    'order', 'refund', 'subscription', 'wallet_charge', 'engagement', 'dispute', 'payout'
  ));

-- Section - questions other areas ask of disputes
-- Defined here as "no" so that escrow, wallet spending and payouts can ask them before the
-- disputes migration (which redefines both) exists; the answer never depends on who asks.
create function settle.order_has_open_dispute(p_order_id uuid) returns boolean
language sql stable security definer set search_path = ''
as $$ select false $$;
comment on function settle.order_has_open_dispute(uuid) is 'True while a chargeback on the order''s payment is open (funds withdrawn or not): escrow settlement and refunds wait for it.';

create function settle.spending_blocked(p_account_id uuid, p_currency text) returns boolean
language sql stable security definer set search_path = ''
as $$ select false $$;
comment on function settle.spending_blocked(uuid, text) is 'True while the account owes the platform a dispute shortfall in the currency: its wallet may not be spent or paid out in it.';

revoke execute on function settle.order_has_open_dispute(uuid), settle.spending_blocked(uuid, text)
  from public;
