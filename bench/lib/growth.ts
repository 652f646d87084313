// The growth phase's preload: many paid top-up orders with everything a payment leaves behind
// (the order, its ledger transaction and entries, the wallet's balance, its outbox event and
// the webhook event that paid it, its payment_stats rollup figures), written in bulk with
// set-based SQL.
//
// Paying 10^6 orders through the real functions takes 20+ minutes here (1.3 ms per order
// through the status update's triggers alone), so the rows are cloned, per gateway, from an
// order the real path just paid (the sample): the same kind, description, keys' shape, system
// accounts, outbox type and payload (settle.outbox_order_payload, the real function), webhook
// columns and raw body, with this order's ids and amount put in. The triggers are off while it
// writes (session_replication_role = replica: CHECK, NOT NULL and unique constraints still
// hold) and their effects are reproduced: the order is inserted paid, each wallet's balance
// moves by its entries in one update.
//
// What keeps this honest:
//  - sampleShape() counts what one real payment added to every table; preload() refuses to
//    run if the path now writes anything it does not reproduce (a new table, a second entry).
//  - Afterwards the harness runs settle.ledger_audit() (must be empty) and its own invariants.
import type { Sql } from "../../dev/db.ts";

/** Row counts of every table in the schemas settle writes. */
export async function tableCounts(db: Sql): Promise<Record<string, number>> {
  const tables = await db`
    select format('%I.%I', schemaname, relname) as t from pg_stat_user_tables
    where schemaname in ('public', 'settle', 'auth') order by 1`;
  const out: Record<string, number> = {};
  for (const { t } of tables) {
    const [r] = await db.unsafe(`select count(*)::bigint as n from ${t}`);
    out[t] = Number(r.n);
  }
  return out;
}

/** What the bulk writer reproduces for each paid order (besides the order itself). */
export const PER_PAYMENT: Record<string, number> = {
  "public.ledger_transactions": 1,
  "public.ledger_entries": 2,
  "public.outbox_events": 1,
  "public.webhook_events": 1,
  // payment_stats' delta row (20261201001300_payment_stats.sql): the preload folds its orders straight into the
  // rollups instead, as settle.compact_payment_stats() would.
  "settle.payment_stats_deltas": 1,
};

/** Problems when `events` real payments did not add exactly PER_PAYMENT rows each. */
export function shapeProblems(
  before: Record<string, number>,
  after: Record<string, number>,
  events: number,
): string[] {
  const problems: string[] = [];
  for (const t of new Set([...Object.keys(before), ...Object.keys(after)])) {
    if (t === "public.orders") continue; // paid in place: the preload inserts them
    const delta = (after[t] ?? 0) - (before[t] ?? 0);
    const want = (PER_PAYMENT[t] ?? 0) * events;
    if (delta !== want) {
      problems.push(
        `${events} real payments added ${delta} rows to ${t}, the preload reproduces ${want}: ` +
          "the payment path changed, update bench/lib/growth.ts",
      );
    }
  }
  return problems;
}

export interface PreloadOptions {
  orders: number;
  /** Accounts (users) the orders are spread over. */
  accounts: number;
  /** Days back over which created_at is spread (uniformly). */
  days: number;
  gateways: ("razorpay" | "stripe")[];
  batch?: number;
}

/**
 * Bulk users (the auth trigger gives each an account and an INR wallet; a USD wallet is added
 * for Stripe) and their paid orders, cloned from the sample order of each gateway.
 */
export async function preload(
  db: Sql,
  o: PreloadOptions,
  log: (msg: string) => void,
): Promise<{ userIds: string[]; seconds: number }> {
  const t0 = performance.now();
  const [{ n: subscribers }] = await db`
    select count(*)::int as n from public.outbox_subscribers where active`;
  if (subscribers) throw new Error("the preload writes no outbox deliveries: no subscribers");
  const users = await db`
    insert into auth.users (id, email)
    select gen_random_uuid(), 'preload-' || g || '-' || substr(md5(random()::text), 1, 8) || '@bench.local'
    from generate_series(1, ${o.accounts}) g
    returning id`;
  const userIds = users.map((u) => u.id as string);
  await db`select settle.ensure_wallet(a.id, 'USD') from public.accounts a
    join jsonb_array_elements_text(${
    db.json(userIds)
  }::jsonb) u(id) on a.personal_owner_id = u.id::uuid`;
  await db.unsafe(`
    drop table if exists bench_growth_accounts;
    create unlogged table bench_growth_accounts (
      k bigint primary key, account_id uuid, user_id uuid, inr_wallet uuid, usd_wallet uuid)`);
  await db`
    insert into bench_growth_accounts
    select u.k - 1, a.id, u.id::uuid, wi.id, wu.id
    from jsonb_array_elements_text(${db.json(userIds)}::jsonb) with ordinality as u(id, k)
    join public.accounts a on a.personal_owner_id = u.id::uuid
    join public.wallets wi on wi.account_id = a.id and wi.currency = 'INR'
    join public.wallets wu on wu.account_id = a.id and wu.currency = 'USD'`;
  const [{ n: mapped }] = await db`select count(*)::int as n from bench_growth_accounts`;
  if (mapped !== o.accounts) throw new Error(`preload: ${mapped} of ${o.accounts} accounts`);
  const batch = o.batch ?? 100_000;
  for (let start = 0; start < o.orders; start += batch) {
    const end = Math.min(o.orders, start + batch);
    await db.begin(async (tx) => {
      await tx.unsafe("set local session_replication_role = replica");
      await tx.unsafe(batchSql(o), [start, end, o.accounts, o.days, o.gateways]);
    });
    log(`growth preload: ${end} of ${o.orders} orders`);
  }
  await reproduceEffects(db);
  await db.unsafe("drop table bench_growth_accounts");
  return { userIds, seconds: (performance.now() - t0) / 1000 };
}

/** The triggers' effects on the preloaded orders' wallets and payment_stats rollups. */
async function reproduceEffects(db: Sql) {
  // The wallets' balances, moved by exactly their new entries (the ledger trigger's effect).
  await db.begin(async (tx) => {
    await tx.unsafe("set local session_replication_role = replica");
    await tx.unsafe(`
      update public.wallets w set balance = w.balance + s.total, updated_at = now()
      from (select e.wallet_id, sum(e.amount) as total from public.ledger_entries e
            join bench_growth_accounts g on e.wallet_id in (g.inr_wallet, g.usd_wallet)
            group by e.wallet_id) s
      where w.id = s.wallet_id`);
  });
  // payment_stats' rollups (20261201001300_payment_stats.sql): what compaction would fold for these orders.
  await db.unsafe(`
    with g as (
      select o.account_id, (o.created_at at time zone 'UTC')::date as day, o.gateway, o.currency,
             count(*) as n, sum(o.amount) as gross
      from public.orders o join bench_growth_accounts a on a.account_id = o.account_id
      group by 1, 2, 3, 4
    ),
    per_account as (
      insert into settle.payment_stats_account_daily as r
      select account_id, day, gateway, currency, n, n, 0, 0, gross, 0 from g order by 1, 2, 3, 4
      on conflict (account_id, day, gateway, currency) do update set
        orders_created = r.orders_created + excluded.orders_created,
        orders_paid = r.orders_paid + excluded.orders_paid,
        gross = r.gross + excluded.gross
      returning 1
    )
    insert into settle.payment_stats_daily as r
    select day, gateway, currency, sum(n), sum(n), 0, 0, sum(gross), 0 from g
    group by 1, 2, 3 order by 1, 2, 3
    on conflict (day, gateway, currency) do update set
      orders_created = r.orders_created + excluded.orders_created,
      orders_paid = r.orders_paid + excluded.orders_paid,
      gross = r.gross + excluded.gross`);
}

/**
 * One batch of orders [$1, $2): order k belongs to account k % $3, is created uniformly over the
 * last $4 days and paid a minute later, alternating over the gateways in $5. Every row is
 * cloned from the gateway's sample (the latest order the real path paid).
 */
// One statement (all of a batch's rows in data-modifying CTEs): long, and clearer whole.
function batchSql(_o: PreloadOptions): string {
  return `
    with sample as (
      select distinct on (o.gateway) o.gateway, o.id as order_id, o.gateway_order_id,
             o.gateway_payment_id, t.id as tx_id, t.kind, t.idempotency_key, t.description,
             w.event_id, w.raw_body, w.body_key, w as wrow
      from public.orders o
      join public.ledger_transactions t on t.order_id = o.id
      join public.webhook_events w on w.order_id = o.id and w.outcome = 'applied'
      where o.status = 'paid' and o.purpose = 'wallet_topup'
        and o.gateway = any($5::text[])
      order by o.gateway, o.paid_at desc
    ),
    gen as (
      select k, ($5::text[])[1 + k % cardinality($5::text[])] as gateway,
             gen_random_uuid() as id,
             100 + (hashint8(k) & 65535) * 1000 / 65536 * 100 as amount,
             now() - make_interval(secs => (hashint8(k + 7) & 1048575)::float8 / 1048576 * $4 * 86400)
               as created_at,
             md5(k::text || clock_timestamp()::text) as h
      from generate_series($1::bigint, $2::bigint - 1) k
    ),
    o as (
      insert into public.orders (id, account_id, created_by, gateway, purpose, amount, currency,
        status, gateway_order_id, gateway_payment_id, gateway_attempts, paid_at, created_at,
        updated_at)
      select g.id, a.account_id, a.user_id, g.gateway, 'wallet_topup', g.amount,
             case g.gateway when 'stripe' then 'USD' else 'INR' end, 'paid',
             case g.gateway when 'stripe' then 'pi_G' || left(g.h, 23) else 'order_G' || left(g.h, 13) end,
             case g.gateway when 'stripe' then 'ch_G' || right(g.h, 23) else 'pay_G' || right(g.h, 13) end,
             1, g.created_at + interval '1 minute', g.created_at, g.created_at + interval '1 minute'
      from gen g join bench_growth_accounts a on a.k = g.k % $3
      returning *
    ),
    tx as (
      insert into public.ledger_transactions (kind, idempotency_key, order_id, description, created_at)
      select s.kind, replace(s.idempotency_key, s.order_id::text, o.id::text), o.id, s.description,
             o.paid_at
      from o join sample s on s.gateway = o.gateway
      returning id, order_id, created_at
    ),
    entries as (
      insert into public.ledger_entries (transaction_id, wallet_id, account_id, system_account,
        currency, amount, created_at)
      select tx.id, case when e.wallet_id is null then null
                         when o.currency = 'USD' then a.usd_wallet else a.inr_wallet end,
             case when e.wallet_id is null then null else o.account_id end,
             e.system_account, o.currency, sign(e.amount)::bigint * o.amount, tx.created_at
      from tx join o on o.id = tx.order_id
      join bench_growth_accounts a on a.account_id = o.account_id
      join sample s on s.gateway = o.gateway
      join lateral (select * from public.ledger_entries x where x.transaction_id = s.tx_id
                    order by x.id) e on true
      returning 1
    ),
    -- Data-modifying CTEs run to completion whether or not they are read.
    outbox as (
      insert into public.outbox_events (type, account_id, subject_type, subject_id, payload,
        created_at)
      select x.type, o.account_id, x.subject_type, o.id,
             settle.outbox_order_payload(o, x.payload ->> 'previous_status'), o.paid_at
      from o join sample s on s.gateway = o.gateway
      join public.outbox_events x on x.subject_type = 'order' and x.subject_id = s.order_id
      returning 1
    )
    insert into public.webhook_events (gateway, event_id, event_type, gateway_order_id,
      gateway_payment_id, amount, currency, order_id, raw_body, outcome, detail, occurred_at,
      received_at, processed_at, kind, failure_code, failure_reason, effect, body_key)
    select o.gateway, left(s.event_id, 4) || 'G' || left(md5(o.id::text), 20),
           (s.wrow).event_type, o.gateway_order_id, o.gateway_payment_id, o.amount, o.currency,
           o.id,
           replace(replace(replace(s.raw_body, s.gateway_order_id, o.gateway_order_id),
             s.gateway_payment_id, o.gateway_payment_id), s.event_id,
             left(s.event_id, 4) || 'G' || left(md5(o.id::text), 20)),
           'applied', (s.wrow).detail, o.paid_at, o.paid_at, o.paid_at, (s.wrow).kind,
           (s.wrow).failure_code, (s.wrow).failure_reason, (s.wrow).effect,
           case when s.body_key is null then null else 'G' || md5(o.id::text) end
    from o join sample s on s.gateway = o.gateway`;
}
