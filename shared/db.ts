// Database access: one postgres.js pool; user work runs as `authenticated` so RLS applies.
import postgres from "postgres";
import type { Caller } from "./auth.ts";

export type Sql = postgres.Sql;
export type Tx = postgres.TransactionSql;

/**
 * Prepared statements are off by default because Supabase's transaction pooler (the
 * connection Supabase recommends for Edge Functions) cannot keep them. A direct or
 * session-mode connection may opt in with `?prepare=true` in the database URL. Then each
 * statement costs one round trip instead of two (postgres.js describes every unprepared
 * statement before binding it) and is parsed and planned once per connection (see
 * bench/README.md).
 */
export function preparedStatements(url: string): boolean {
  try {
    return new URL(url).searchParams.get("prepare") === "true";
  } catch {
    return false;
  }
}

export function createPool(url: string, max: number): Sql {
  return postgres(url, {
    prepare: preparedStatements(url),
    max,
    idle_timeout: 20,
    connect_timeout: 10,
    onnotice: () => {},
    connection: { application_name: "settle" },
  });
}

/**
 * A SQL string literal for any text, as libpq's PQescapeLiteral writes it: E'…' with every
 * backslash and quote doubled, so the literal reads back as exactly this text whatever
 * standard_conforming_strings is. JSON text holds no NUL (JSON.stringify escapes it); any other
 * text with one is refused.
 */
export function sqlLiteral(text: string): string {
  // A NUL would end the query text where it stands (the protocol's strings are NUL-terminated):
  // refused here, as Postgres refuses one in a parameter.
  if (text.includes("\0")) throw new TypeError("a SQL literal cannot hold a NUL character");
  return `E'${text.replaceAll("\\", "\\\\").replaceAll("'", "''")}'`;
}

/** The statement that sets a caller's role and claims; remembered for cached (frozen) callers. */
const claimsStatement = new WeakMap<object, string>();
function claimsSql(caller: Caller): string {
  let text = claimsStatement.get(caller.claims);
  if (text === undefined) {
    const role = caller.role === "service_role" ? "service_role" : "authenticated";
    text = `select set_config('role', '${role}', true), set_config('request.jwt.claims', ${
      sqlLiteral(JSON.stringify(caller.claims))
    }, true)`;
    if (Object.isFrozen(caller.claims)) claimsStatement.set(caller.claims, text);
  }
  return text;
}

/**
 * Runs fn in a transaction as the caller, exactly as PostgREST would: role and JWT claims set
 * locally, so policies and auth.uid() see the user.
 */
export function asUser<T>(sql: Sql, caller: Caller, fn: (tx: Tx) => Promise<T>): Promise<T> {
  return sql.begin(async (tx) => {
    // One statement without parameters (the claims as a literal, sqlLiteral): sent as a simple
    // query, it needs no describe round trip and does not hold back fn's first statement,
    // which goes out in the same write. Not awaited on its own: if it failed, fn's statements
    // fail too (the transaction is aborted), and its own error is the one reported.
    const claims = tx.unsafe(claimsSql(caller));
    claims.catch(() => {});
    let result: T;
    try {
      result = await fn(tx);
    } catch (err) {
      await claims;
      throw err;
    }
    await claims;
    return result;
  }) as Promise<T>;
}
