// The README, .env.example and supabase/config.toml list what the code has: every function in
// dev/stack.ts FUNCTIONS, every environment variable read in shared/config.ts, dev/ or scripts/,
// every error code the API can return, every key of reconcile's answer. A new one fails here
// until it is documented.
import assert from "node:assert/strict";
import { FUNCTIONS } from "../dev/stack.ts";
import { ERROR_CODES } from "../shared/errors.ts";
import { withStack } from "./support/stack.ts";

const root = new URL("../", import.meta.url);
const read = (path: string) => Deno.readTextFile(new URL(path, root));
const readme = await read("README.md");
const names = Object.keys(FUNCTIONS);

async function sources(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(new URL(dir, root))) {
    if (e.isFile && /\.(ts|sql)$/.test(e.name)) out.push(await read(`${dir}${e.name}`));
  }
  return out;
}

/** `## heading` section of the README, up to the next heading of the same or higher level. */
function section(heading: string): string {
  const start = readme.indexOf(`\n${heading}\n`);
  assert.ok(start >= 0, `README has no "${heading}"`);
  const level = heading.match(/^#+/)![0];
  const rest = readme.slice(start + heading.length + 2);
  const end = rest.search(new RegExp(`\\n#{1,${level.length}} `));
  return end < 0 ? rest : rest.slice(0, end);
}

/** [functions.<name>] sections of config.toml with their key = value lines. */
function functionSections(toml: string): Map<string, Record<string, string>> {
  const out = new Map<string, Record<string, string>>();
  let current: Record<string, string> | undefined;
  for (const line of toml.split("\n")) {
    const head = line.match(/^\[(.+)\]\s*$/);
    if (head) {
      const m = head[1].match(/^functions\.([a-z0-9-]+)$/);
      current = m ? {} : undefined;
      if (m) out.set(m[1], current!);
      continue;
    }
    const kv = line.match(/^([a-z_]+)\s*=\s*(.+?)\s*$/);
    if (current && kv) current[kv[1]] = kv[2].replace(/^"(.*)"$/, "$1");
  }
  return out;
}

Deno.test("config.toml: a section per function, verify_jwt off only for webhooks", async () => {
  const sections = functionSections(await read("supabase/config.toml"));
  assert.deepEqual([...sections.keys()].sort(), [...names].sort(), "sections vs FUNCTIONS");
  for (const name of names) {
    const s = sections.get(name)!;
    const webhook = name === "webhook" || name.startsWith("webhook-");
    assert.equal(s.verify_jwt, webhook ? "false" : "true", `${name}: verify_jwt`);
    assert.equal(s.import_map, "../deno.json", `${name}: import_map`);
    assert.equal(s.entrypoint, `./functions/${name}/index.ts`, `${name}: entrypoint`);
    await Deno.stat(new URL(`supabase/functions/${name}/index.ts`, root));
  }
});

Deno.test("README: the deploy command and the function list name every function", () => {
  // Continuation lines joined; flags (--use-api) are not function names.
  const deploy = readme.replace(/\\\n\s*/g, " ").match(/functions deploy ([^\n]+)/);
  assert.ok(deploy, "README has no `functions deploy` command");
  const listed = deploy[1].trim().split(/\s+/).filter((w) => !w.startsWith("-"));
  assert.deepEqual(listed.sort(), [...names].sort());
});

/** Environment variables the code reads: config.ts's names, and Deno.env.get elsewhere. */
async function envVarsRead(): Promise<Set<string>> {
  const found = new Set<string>();
  const config = await read("shared/config.ts");
  // In config.ts every variable is a quoted upper-case name (env("X"), required(env, "X"), …).
  for (const m of config.matchAll(/"([A-Z][A-Z0-9_]{2,})"/g)) found.add(m[1]);
  for (const dir of ["shared/", "dev/", "scripts/"]) {
    for (const text of await sources(dir)) {
      for (const m of text.matchAll(/Deno\.env\.get\("([A-Z0-9_]+)"\)/g)) found.add(m[1]);
    }
  }
  return found;
}

Deno.test("README and .env.example: every environment variable the code reads", async () => {
  const vars = await envVarsRead();
  assert.ok(vars.has("RATE_LIMITS") && vars.has("EMBEDDED_DB_PORT"), [...vars].join(","));
  const table = section("## Environment");
  const example = await read(".env.example");
  const missing = [...vars].filter((v) => !table.includes(`\`${v}\``));
  assert.deepEqual(missing, [], "undocumented in README's Environment table");
  const absent = [...vars].filter((v) => !new RegExp(`^${v}=`, "m").test(example));
  assert.deepEqual(absent, [], "missing from .env.example");
});

/**
 * Error codes the API can answer with, each with the statuses it is thrown with (none known for
 * a literal `error: { code: … }` body): HttpError(...) in TypeScript, settle.fail(...) and
 * ST<status> hints in SQL.
 */
async function errorCodes(): Promise<Map<string, Set<number>>> {
  const found = new Map<string, Set<number>>([["internal_error", new Set([500])]]);
  const add = (code: string, status?: string) => {
    if (!found.has(code)) found.set(code, new Set());
    if (status) found.get(code)!.add(Number(status));
  };
  const dirs = [
    "shared/",
    "shared/services/",
    "shared/gateways/razorpay/",
    "shared/gateways/stripe/",
  ];
  const ts = (await Promise.all(dirs.map(sources))).flat();
  for (const name of names) ts.push(await read(`supabase/functions/${name}/handler.ts`));
  for (const text of ts) {
    for (const m of text.matchAll(/HttpError\(\s*(\d{3}),\s*"([a-z_]+)"/g)) add(m[2], m[1]);
    for (const m of text.matchAll(/error: \{ code: "([a-z_]+)"/g)) add(m[1]);
  }
  for (const text of await sources("supabase/migrations/")) {
    for (const m of text.matchAll(/settle\.fail\(\s*(\d{3}),\s*'([a-z_]+)'/g)) add(m[2], m[1]);
    for (const m of text.matchAll(/errcode = 'ST(\d{3})'[^;]*?hint = '([a-z_]+)'/gs)) {
      add(m[2], m[1]);
    }
  }
  return found;
}

Deno.test("README: the error table is ERROR_CODES, row by row", () => {
  const rows = [...section("## API").matchAll(/^\| (\d{3}) +\| `([a-z_]+)` +\| (.+?) +\|$/gm)]
    .map((m) => ({ status: Number(m[1]), code: m[2], meaning: m[3] }));
  assert.deepEqual(rows, ERROR_CODES.map((e) => ({ ...e })));
  const codes = ERROR_CODES.map((e) => e.code);
  assert.deepEqual(codes.filter((c, i) => codes.indexOf(c) !== i), [], "listed twice");
});

Deno.test("ERROR_CODES: every code the API can return, with its status, and no other", async () => {
  const found = await errorCodes();
  assert.ok(
    found.has("rate_limited") && found.has("refund_exceeds_payment"),
    [...found.keys()].join(),
  );
  const listed = new Map<string, number>(ERROR_CODES.map((e) => [e.code, e.status]));
  assert.deepEqual(
    [...found.keys()].filter((c) => !listed.has(c)).sort(),
    [],
    "not in ERROR_CODES",
  );
  const wrong = [...found].flatMap(([code, statuses]) =>
    [...statuses].filter((s) => listed.has(code) && s !== listed.get(code)).map((s) =>
      `${code} ${s}`
    )
  );
  assert.deepEqual(wrong, [], "thrown with another status than ERROR_CODES says");
  assert.deepEqual(
    [...listed.keys()].filter((c) => !found.has(c)).sort(),
    [],
    "listed, never returned",
  );
});

/** Every key path of a JSON value: {"a":{"b":1}} → ["a", "a.b"]. */
function keyPaths(v: unknown, prefix = ""): string[] {
  if (!v || typeof v !== "object" || Array.isArray(v)) return [];
  return Object.entries(v).flatMap(([k, x]) => [`${prefix}${k}`, ...keyPaths(x, `${prefix}${k}.`)]);
}

Deno.test({
  name: "README: the reconcile example has every key reconcile answers with",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const text = section("### Reconciliation");
    const example = text.slice(text.indexOf("`POST /reconcile`")).match(/```json\n([^`]+)```/);
    assert.ok(example, "no JSON example after `POST /reconcile`");
    await withStack(async (s) => {
      const res = await fetch(`${s.functionsUrl}/reconcile`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${s.serviceRoleKey}`,
          "content-type": "application/json",
        },
        body: JSON.stringify({ limit: 1 }),
      });
      const body = await res.json();
      assert.equal(res.status, 200, JSON.stringify(body));
      assert.deepEqual(keyPaths(JSON.parse(example[1])).sort(), keyPaths(body).sort());
    });
  },
});
