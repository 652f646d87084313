// The README, docs/api.md, docs/operations.md, .env.example and supabase/config.toml list what the
// code has: every function in dev/stack.ts FUNCTIONS, every environment variable read in
// shared/config.ts, dev/ or scripts/, every error code the API can return, every key of reconcile's
// answer. A new one fails here until it is documented.
import assert from "node:assert/strict";
import { FUNCTIONS } from "../dev/stack.ts";
import { ERROR_CODES } from "../shared/errors.ts";
import { withStack } from "./support/stack.ts";

const root = new URL("../", import.meta.url);
const read = (path: string) => Deno.readTextFile(new URL(path, root));
const docs = {
  "README.md": await read("README.md"),
  "docs/api.md": await read("docs/api.md"),
  "docs/operations.md": await read("docs/operations.md"),
  "docs/decisions.md": await read("docs/decisions.md"),
};
type Doc = keyof typeof docs;
const readme = docs["README.md"];
const names = Object.keys(FUNCTIONS);

async function sources(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(new URL(dir, root))) {
    if (e.isFile && /\.(ts|sql)$/.test(e.name)) out.push(await read(`${dir}${e.name}`));
  }
  return out;
}

/** A document's lines outside ``` fences: a `# comment` in a shell block is not a heading. */
function headings(doc: Doc): { line: number; level: number; text: string }[] {
  let fence = false;
  return docs[doc].split("\n").flatMap((l, line) => {
    if (l.startsWith("```")) fence = !fence;
    const m = !fence && l.match(/^(#+) (.+)$/);
    return m ? [{ line, level: m[1].length, text: m[2] }] : [];
  });
}

/** `## heading` section of a document, up to the next heading of the same or higher level. */
function section(doc: Doc, heading: string): string {
  const level = heading.match(/^#+/)![0].length;
  const all = headings(doc);
  const i = all.findIndex((h) => h.level === level && h.text === heading.slice(level + 1));
  assert.ok(i >= 0, `${doc} has no "${heading}"`);
  const next = all.slice(i + 1).find((h) => h.level <= level);
  return docs[doc].split("\n").slice(all[i].line + 1, next?.line).join("\n");
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
  const table = section("README.md", "## Environment");
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

Deno.test("docs/api.md: the error table is ERROR_CODES, row by row", () => {
  const rows = [
    ...section("docs/api.md", "# API").matchAll(/^\| (\d{3}) +\| `([a-z_]+)` +\| (.+?) +\|$/gm),
  ]
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
  name: "docs/operations.md: the reconcile example has every key reconcile answers with",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const text = section("docs/operations.md", "## Reconciliation");
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

/** GitHub's anchor for each heading: lower case, punctuation dropped, spaces to hyphens, -1 on repeats. */
function anchored(doc: Doc): { level: number; text: string; anchor: string }[] {
  const seen = new Map<string, number>();
  return headings(doc).map(({ level, text }) => {
    const slug = text.toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, "").replaceAll(" ", "-");
    const n = seen.get(slug) ?? 0;
    seen.set(slug, n + 1);
    return { level, text, anchor: n ? `${slug}-${n}` : slug };
  });
}

Deno.test("README and docs/: every relative link names a file and a heading that exist", async () => {
  const broken: string[] = [];
  for (const doc of Object.keys(docs) as Doc[]) {
    const prose = docs[doc].replace(/^```[^]*?^```$/gm, "");
    for (const [, target] of prose.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z]+:/.test(target)) continue;
      const [file, anchor] = target.split("#");
      const path = file ? new URL(file, new URL(doc, root)).href.slice(root.href.length) : doc;
      const exists = await Deno.stat(new URL(path, root)).then(() => true, () => false);
      const known = path in docs ? anchored(path as Doc).map((h) => h.anchor) : [];
      if (!exists || (anchor !== undefined && !known.includes(anchor))) {
        broken.push(`${doc}: ${target}`);
      }
    }
  }
  assert.deepEqual(broken, []);
});

Deno.test("README: API at a glance has one row per function, each linking its reference", () => {
  const table = section("README.md", "## API at a glance");
  const rows = [...table.matchAll(/^\| `([a-z-]+)` +\|(.+)\|$/gm)];
  assert.deepEqual(rows.map((r) => r[1]).sort(), [...names].sort());
  const unlinked = rows.filter((r) => !/\]\(docs\/(api|operations)\.md#/.test(r[2]));
  assert.deepEqual(unlinked.map((r) => r[1]), [], "rows without a reference link");
});

Deno.test("docs/decisions.md: the index links every ## section, in order", () => {
  const text = docs["docs/decisions.md"];
  const index = text.slice(0, text.indexOf("\n## ")).replace(/\n +/g, " ");
  const listed = [...index.matchAll(/^- \[(.+)\]\(#([^)]+)\)$/gm)].map((m) => [m[1], m[2]]);
  const sections = anchored("docs/decisions.md").filter((h) => h.level === 2);
  assert.deepEqual(listed, sections.map((h) => [h.text, h.anchor]));
});
