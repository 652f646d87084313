// Dev-only pages: the demo checkout, a token helper for seeded users, and the wallet read.
import type { App } from "../shared/app.ts";
import { asUser } from "../shared/db.ts";
import { json } from "../shared/http.ts";
import { minorFromDb } from "../shared/money.ts";
import { userToken } from "./keys.ts";

const page = new URL("./public/index.html", import.meta.url);

export async function serve(
  req: Request,
  ctx: { app: App; anonKey: string; simulatorUrl: string; jwtSecret: string },
): Promise<Response | undefined> {
  const url = new URL(req.url);
  if (url.pathname === "/" && req.method === "GET") {
    const html = (await Deno.readTextFile(page))
      .replaceAll("__ANON_KEY__", ctx.anonKey)
      .replaceAll("__SIMULATOR_URL__", ctx.simulatorUrl);
    return new Response(html, { headers: { "content-type": "text/html; charset=utf-8" } });
  }
  // Stands in for Supabase Auth sign-in locally: a token for a seeded user by email.
  if (url.pathname === "/dev/token" && req.method === "GET") {
    const email = url.searchParams.get("email") ?? "alice@example.com";
    const [user] = await ctx.app.sql`select id from auth.users where email = ${email}`;
    if (!user) return json(404, { error: { code: "not_found", message: "no such user" } });
    return json(200, {
      access_token: await userToken(user.id, { email, secret: ctx.jwtSecret }),
      user_id: user.id,
    });
  }
  // Stands in for PostgREST locally: the caller's wallets, read through RLS.
  if (url.pathname === "/dev/wallets" && req.method === "GET") {
    const caller = await ctx.app.authenticate(req);
    const rows = await asUser(
      ctx.app.sql,
      caller,
      (tx) => tx`select currency, balance from public.wallets order by currency`,
    );
    return json(200, {
      wallets: rows.map((r) => ({ currency: r.currency, balance: minorFromDb(r.balance) })),
    });
  }
  return undefined;
}
