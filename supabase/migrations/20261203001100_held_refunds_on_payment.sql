-- A gateway refund that arrives before settle knows its order is paid is counted once it is.
--
-- Events are not ordered: a refund webhook can come before the capture (a dropped or late
-- payment.captured, a verify never called). apply_refund_event then holds it in
-- gateway_refund_holds as 'order_not_refundable', and until now only a failing settle refund
-- (transition_refund) re-applied holds, so this one stayed uncounted for an operator to find.
-- When an order becomes paid, its open holds are applied in the same transaction. The trigger's
-- name sorts after orders_post_payment, so the order's credit is posted before the refund's debit
-- (AFTER triggers of one event fire in name order).
create function settle.apply_held_refunds_on_payment() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  perform settle.apply_held_gateway_refunds(new.id);
  return null;
end
$$;

create trigger orders_zz_held_refunds after update of status on public.orders
  for each row when (new.status = 'paid' and old.status in ('created', 'authorized', 'failed', 'expired'))
  execute function settle.apply_held_refunds_on_payment();

revoke execute on function settle.apply_held_refunds_on_payment() from public, anon, authenticated;
