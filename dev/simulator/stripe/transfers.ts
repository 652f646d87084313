// Transfers from the platform balance to connected accounts: /v1/transfers (create, list,
// retrieve) and their reversals (/v1/transfers/:id/reversals), plus the /_sim/stripe control
// that reverses one as an operator in the Dashboard would. Transfers are synchronous: a transfer
// made has moved the money (MARKETPLACE_FACTS 3.3). Their events are platform events.
import { invalid, missingParam, noSuch } from "./errors.ts";
import { emit } from "./events.ts";
import { MAX_AMOUNT } from "./currencies.ts";
import { list, retrieve } from "./lists.ts";
import {
  ALLOWED,
  applyMetadata,
  currencyParam,
  int,
  type Params,
  rejectUnknown,
  str,
} from "./params.ts";
import { type ApiCall, type Ctx, ok, type Res, type StripeState } from "./state.ts";
import { clone, diff, randomId } from "./util.ts";
import type { Json, Transfer, TransferReversal } from "./wire.ts";

function positiveAmount(p: Params, name = "amount"): number | undefined {
  const amount = int(p, name);
  if (amount === undefined) return undefined;
  if (amount < 1) throw invalid("Invalid positive integer", name, "parameter_invalid_integer");
  if (amount > MAX_AMOUNT) {
    throw invalid("Amount must be no more than 99999999", name, "amount_too_large");
  }
  return amount;
}

export function createTransfer(s: StripeState, { params: p, ctx, path }: ApiCall): Res {
  rejectUnknown(p, ALLOWED.transferCreate);
  const amount = positiveAmount(p);
  if (amount === undefined) throw missingParam("amount");
  const currency = currencyParam(p);
  const destination = str(p, "destination");
  if (destination === undefined) throw missingParam("destination");
  const a = s.accounts.get(destination);
  if (!a) throw noSuch("destination", destination, "destination");
  if (a.capabilities.transfers !== "active") {
    // Assumed code; the message is Stripe's.
    throw invalid(
      "Your destination account needs to have at least one of the following capabilities " +
        "enabled: transfers, crypto_transfers, legacy_payments",
      "destination",
      "insufficient_capabilities_for_transfer",
    );
  }
  const source = str(p, "source_transaction");
  if (source !== undefined && !s.charges.has(source)) {
    throw noSuch("charge", source, "source_transaction");
  }
  // Assumed: the platform balance always covers a transfer (no balance is modelled).
  const id = randomId("tr_");
  const t: Transfer = {
    id,
    object: "transfer",
    amount,
    amount_reversed: 0,
    balance_transaction: randomId("txn_"),
    created: s.unix(),
    currency,
    description: str(p, "description") ?? null,
    destination,
    destination_payment: randomId("py_"),
    livemode: false,
    metadata: applyMetadata(p.metadata, {}),
    reversals: {
      object: "list",
      data: [],
      has_more: false,
      total_count: 0,
      url: `${path}/${id}/reversals`,
    },
    reversed: false,
    source_transaction: source ?? null,
    source_type: "card",
    transfer_group: str(p, "transfer_group") ?? null,
  };
  s.transfers.set(id, t);
  emit(s, ctx, "transfer.created", t);
  return ok(t);
}

export function retrieveTransfer(s: StripeState, { ids, params: p }: ApiCall): Res {
  return ok(retrieve(p, s.transfer(ids.id)));
}

export function listTransfers(s: StripeState, { params: p, path }: ApiCall): Res {
  rejectUnknown(p, ALLOWED.transferList);
  const destination = str(p, "destination");
  const group = str(p, "transfer_group");
  const all = [...s.transfers.values()].filter((t) =>
    (destination === undefined || t.destination === destination) &&
    (group === undefined || t.transfer_group === group)
  );
  return ok(list(all, p, path));
}

/** Reverses `amount` (default: all that is left) of a transfer and sends transfer.reversed. */
function reverse(
  s: StripeState,
  ctx: Ctx,
  t: Transfer,
  amount: number | undefined,
  metadata: Json,
): TransferReversal {
  const left = t.amount - t.amount_reversed;
  const amt = amount ?? left;
  if (left === 0) {
    throw invalid(
      `Transfer ${t.id} has already been fully reversed.`,
      undefined,
      "transfer_already_reversed",
    );
  }
  if (amt > left) {
    throw invalid(
      `You can only reverse up to the unreversed amount of the transfer (${left}).`,
      "amount",
    );
  }
  const before = clone(t);
  const r: TransferReversal = {
    id: randomId("trr_"),
    object: "transfer_reversal",
    amount: amt,
    balance_transaction: randomId("txn_"),
    created: s.unix(),
    currency: t.currency,
    destination_payment_refund: randomId("pyr_"),
    metadata: metadata as Record<string, string>,
    source_refund: null,
    transfer: t.id,
  };
  t.amount_reversed += amt;
  t.reversed = t.amount_reversed === t.amount;
  t.reversals = {
    ...t.reversals,
    data: [r, ...t.reversals.data],
    total_count: t.reversals.total_count + 1,
  };
  emit(
    s,
    ctx,
    "transfer.reversed",
    t,
    diff(before as unknown as Json, t as unknown as Json) ?? undefined,
  );
  return r;
}

export function createReversal(s: StripeState, { ids, params: p, ctx }: ApiCall): Res {
  rejectUnknown(p, ALLOWED.reversalCreate);
  const t = s.transfer(ids.id);
  return ok(reverse(s, ctx, t, positiveAmount(p), applyMetadata(p.metadata, {})));
}

export function listReversals(s: StripeState, { ids, params: p, path }: ApiCall): Res {
  rejectUnknown(p, ALLOWED.reversalList);
  return ok(list([...s.transfer(ids.id).reversals.data].reverse(), p, path));
}

export function retrieveReversal(s: StripeState, { ids, params: p }: ApiCall): Res {
  const r = s.transfer(ids.id).reversals.data.find((x) => x.id === ids.reversal);
  if (!r) throw noSuch("transfer_reversal", ids.reversal, "id", 404);
  return ok(retrieve(p, r));
}

/** POST /_sim/stripe/transfers/:id/reverse {amount?, webhooks?}: a reversal made in the Dashboard. */
export function simReverseTransfer(s: StripeState, id: string, body: Json, ctx: Ctx): Json {
  const amount = body.amount;
  if (
    amount !== undefined && (typeof amount !== "number" || !Number.isInteger(amount) || amount < 1)
  ) {
    throw invalid("amount must be a positive integer", "amount");
  }
  const t = s.transfer(id);
  const r = reverse(s, ctx, t, amount as number | undefined, {});
  return { transfer: t, reversal: r };
}
