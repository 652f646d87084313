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

/** The claims as JSON; remembered for the frozen claims that the token cache hands out. */
const claimsText = new WeakMap<object, string>();
function claimsJson(caller: Caller): string {
  let text = claimsText.get(caller.claims);
  if (text === undefined) {
    text = JSON.stringify(caller.claims);
    if (Object.isFrozen(caller.claims)) claimsText.set(caller.claims, text);
  }
  return text;
}

/**
 * Runs fn in a transaction as the caller, exactly as PostgREST would: role and JWT claims set
 * locally, so policies and auth.uid() see the user.
 */
export function asUser<T>(sql: Sql, caller: Caller, fn: (tx: Tx) => Promise<T>): Promise<T> {
  const role = caller.role === "service_role" ? "service_role" : "authenticated";
  return sql.begin(async (tx) => {
    // Not awaited on its own: fn's first statement is queued behind it on the same connection
    // and, with prepared statements, goes out in the same write (one round trip fewer). If it
    // failed, fn's statements fail too, and its own error is the one reported.
    const claims = tx`select set_config('role', ${role}, true),
                    set_config('request.jwt.claims', ${claimsJson(caller)}, true)`;
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
