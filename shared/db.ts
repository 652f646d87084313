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
    // UTF8 pinned for the session (a role's or database's default cannot change it): statements
    // carry values as literals (sqlLiteral), which are safe only in an encoding where no byte
    // of a multibyte character is a quote or a backslash.
    connection: { application_name: "settle", client_encoding: "UTF8" },
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

/** A value a statement takes: what postgres.js would bind as a parameter. */
export type SqlValue = string | number | boolean | Date | null | undefined;

/**
 * A value written as postgres.js would bind it: text and numbers as untyped literals (a
 * parameter of unknown type, resolved by the function's signature), booleans as booleans,
 * dates as timestamptz, null and undefined as null.
 */
export function sqlValue(v: SqlValue): string {
  if (v === null || v === undefined) return "null";
  if (typeof v === "boolean") return v ? "true" : "false";
  if (v instanceof Date) return `${sqlLiteral(v.toISOString())}::timestamptz`;
  return sqlLiteral(String(v));
}

/**
 * `select <fn>(<args>) as result` with every argument a literal (sqlValue): sent by
 * postgres.js as a simple query, one round trip, where a parameterized statement costs a
 * describe round trip first when prepared statements are off (the default). Never prepared,
 * whatever the URL says: each call's text is its own. fn is settle's own function name, never
 * input.
 */
export function sqlCall(fn: string, args: SqlValue[]): string {
  if (!/^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$/.test(fn)) {
    throw new TypeError(`not a function name: ${fn}`);
  }
  return `select ${fn}(${args.map(sqlValue).join(", ")}) as result`;
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
