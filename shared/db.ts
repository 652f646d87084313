// Database access: one postgres.js pool; user work runs as `authenticated` so RLS applies.
import postgres from "postgres";
import type { Caller } from "./auth.ts";

export type Sql = postgres.Sql;
export type Tx = postgres.TransactionSql;

export function createPool(url: string, max: number): Sql {
  // prepare: false because Supabase's transaction pooler cannot keep prepared statements.
  return postgres(url, {
    prepare: false,
    max,
    idle_timeout: 20,
    connect_timeout: 10,
    onnotice: () => {},
    connection: { application_name: "settle" },
  });
}

/**
 * Runs fn in a transaction as the caller, exactly as PostgREST would: role and JWT claims set
 * locally, so policies and auth.uid() see the user.
 */
export function asUser<T>(sql: Sql, caller: Caller, fn: (tx: Tx) => Promise<T>): Promise<T> {
  const role = caller.role === "service_role" ? "service_role" : "authenticated";
  return sql.begin(async (tx) => {
    await tx`select set_config('role', ${role}, true),
                    set_config('request.jwt.claims', ${JSON.stringify(caller.claims)}, true)`;
    return await fn(tx);
  }) as Promise<T>;
}
