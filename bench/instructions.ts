// Instructions per webhook event: what one captured payment costs Postgres in CPU instructions,
// counted by valgrind (callgrind) in a single-user backend. Deterministic where wall-clock time is
// not: on a shared 2-core machine one probe's CPU time per event moves by ±20% from run to run,
// its instruction count by well under 1%. It counts work, not time: cache misses, lock waits,
// WAL flushes and other processes are not in it (bench/README.md says what each figure measures).
//
//   deno run -A bench/instructions.ts [--apply FILE]... [--events 100,300] [--orders 4000]
//
// A private cluster (initdb in a temporary directory, Postgres binaries of the server's major
// version from /usr/lib/postgresql/<major>/bin) gets the migrations, 200 users and pending Razorpay
// top-ups, then `--apply` files (an experiment measured against the same schema), VACUUM ANALYZE,
// and is stopped. Each count runs on a fresh copy of that database: a single-user backend
// (`postgres --single`) under callgrind replays N captures through settle.ingest_webhook, each its
// own statement and transaction, the statement storeEvent sends. Instructions per event are
// (Ir(N2) - Ir(N1)) / (N2 - N1): what the start-up, the session's first plans and the shutdown
// cost cancels out. Needs valgrind and the server's binaries; run as root, it runs them as the
// `postgres` user.
import { parseArgs } from "node:util";
import { connect, createDatabase, migrate } from "../dev/db.ts";
import { LOCAL_RAZORPAY } from "../dev/stack.ts";
import { createUsers, insertOrders } from "./lib/fixtures.ts";
import { capturedEvent } from "./lib/razorpay.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    apply: { type: "string", multiple: true, default: [] },
    events: { type: "string", default: "100,300" },
    orders: { type: "string", default: "4000" },
    major: { type: "string", default: "15" },
    port: { type: "string", default: "5439" },
    keep: { type: "boolean", default: false },
  },
});
const [n1, n2] = values.events.split(",").map(Number);
const bin = `/usr/lib/postgresql/${values.major}/bin`;
const asRoot = Deno.uid() === 0;

async function run(cmd: string[], input?: string): Promise<string> {
  const argv = asRoot ? ["runuser", "-u", "postgres", "--", ...cmd] : cmd;
  const p = new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdin: input === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  // Written while the output is read: a child that fills its stdout pipe stops reading stdin.
  const writing = input === undefined ? Promise.resolve() : (async () => {
    const w = p.stdin.getWriter();
    await w.write(new TextEncoder().encode(input));
    await w.close();
  })();
  const [o] = await Promise.all([p.output(), writing]);
  const text = new TextDecoder().decode(o.stdout) + new TextDecoder().decode(o.stderr);
  if (!o.success) throw new Error(`${cmd.join(" ")} failed:\n${text.slice(-2000)}`);
  return text;
}

const dir = await Deno.makeTempDir({ prefix: "settle_instructions_" });
if (asRoot) await new Deno.Command("chown", { args: ["-R", "postgres", dir] }).output();
const data = `${dir}/data`;
const id = (k: number) => `order_I${String(k + 1).padStart(13, "0")}`;
try {
  await run([`${bin}/initdb`, "-D", data, "-A", "trust", "-U", "postgres"]);
  await run([
    `${bin}/pg_ctl`,
    "-D",
    data,
    "-l",
    `${dir}/log`,
    "-w",
    "-o",
    `-p ${values.port} -k ${dir} -c listen_addresses=127.0.0.1 -c autovacuum=off`,
    "start",
  ]);
  const admin = `postgres://postgres@127.0.0.1:${values.port}/postgres`;
  const url = await createDatabase(admin, "probe");
  const db = connect(url, 2);
  await migrate(db);
  for (const f of values.apply) await db.unsafe(await Deno.readTextFile(f)).simple();
  const users = await createUsers(db, 200, "instr");
  await insertOrders(db, users, Number(values.orders), () => 50_000, id);
  await db.unsafe("vacuum analyze");
  await db.end();
  await run([`${bin}/pg_ctl`, "-D", data, "-w", "stop"]);

  const sample = await capturedEvent(LOCAL_RAZORPAY.webhookSecret, {
    gatewayOrderId: id(0),
    amount: 50_000,
    currency: "INR",
  });
  const body = sample.body.replaceAll("\\", "\\\\").replaceAll("'", "''");
  // One statement per line: the single-user backend runs each line as its own transaction.
  const statements = (n: number) =>
    Array.from({ length: n }, (_, i) => {
      const k = i + 1;
      return `select settle.ingest_webhook(row('razorpay', 'evt_instr_${k}', 'payment.captured', ` +
        `'captured', '${id(k)}', 'pay_I${String(k).padStart(13, "0")}', 50000, 'INR', now(), ` +
        `E'${body}', null, null, null, null)::settle.incoming_event);`;
    }).join("\n") + "\n";

  const count = async (n: number) => {
    await run(
      [`${bin}/postgres`, "--single", "-D", data, "postgres"],
      [
        "drop database if exists probe_run",
        "create database probe_run template probe",
        "",
      ].join("\n"),
    );
    const out = `${dir}/callgrind.${n}`;
    const text = await run([
      "valgrind",
      "--tool=callgrind",
      `--callgrind-out-file=${out}`,
      `${bin}/postgres`,
      "--single",
      "-D",
      data,
      "probe_run",
    ], statements(n));
    const applied = text.split('"outcome": "applied"').length - 1;
    if (applied !== n) throw new Error(`${applied} of ${n} events applied:\n${text.slice(-2000)}`);
    const totals = (await Deno.readTextFile(out)).match(/^totals: (\d+)/m);
    if (!totals) throw new Error(`no totals in ${out}`);
    return Number(totals[1]);
  };
  const a = await count(n1);
  const b = await count(n2);
  console.log(
    `${Math.round((b - a) / (n2 - n1))} instructions per event ` +
      `(${n1} and ${n2} events, one transaction each${
        values.apply.length ? `, with ${values.apply.join(", ")}` : ""
      })`,
  );
} finally {
  await run([`${bin}/pg_ctl`, "-D", data, "-w", "-m", "immediate", "stop"]).catch(() => {});
  if (values.keep) console.error(`kept ${dir}`);
  else await Deno.remove(dir, { recursive: true });
}
