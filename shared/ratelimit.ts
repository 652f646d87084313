// Per-user and per-client-IP request limits, counted in Postgres so every instance shares them.
import type { App } from "./app.ts";
import type { Caller } from "./auth.ts";
import { HttpError } from "./http.ts";

/** What Deno.serve passes beside the request; only the peer address is used. */
export interface ConnInfo {
  remoteAddr?: { hostname?: string };
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/**
 * The client's address as a rate-limit key, or undefined when `raw` is not an IP address.
 * IPv6 is keyed by its /64 (one subscriber usually holds a whole /64), IPv4-mapped IPv6 as
 * the IPv4 address.
 */
export function ipKey(raw: string): string | undefined {
  let s = raw.trim();
  if (s.length === 0 || s.length > 64) return undefined;
  // "[v6]:port" and "v4:port", as some proxies write them.
  const bracketed = s.match(/^\[([^\]]+)\](?::\d+)?$/);
  if (bracketed) s = bracketed[1];
  else if (/^[\d.]+:\d+$/.test(s)) s = s.slice(0, s.indexOf(":"));
  if (IPV4.test(s)) return s;
  if (!/^[0-9A-Fa-f:.]+$/.test(s) || !s.includes(":")) return undefined;
  let canonical: string;
  try {
    // The URL parser validates IPv6 and writes it canonically (lowercase, embedded IPv4 as hex).
    canonical = new URL(`http://[${s}]/`).hostname.slice(1, -1);
  } catch {
    return undefined;
  }
  const [head, tail] = canonical.includes("::") ? canonical.split("::") : [canonical, undefined];
  const left = head ? head.split(":") : [];
  const right = tail ? tail.split(":") : [];
  const groups = [...left, ...Array(8 - left.length - right.length).fill("0"), ...right]
    .map((g) => parseInt(g, 16));
  if (groups.length !== 8 || groups.some((g) => !(g >= 0 && g <= 0xffff))) return undefined;
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return [groups[6] >> 8, groups[6] & 255, groups[7] >> 8, groups[7] & 255].join(".");
  }
  return `${groups.slice(0, 4).map((g) => g.toString(16)).join(":")}::/64`;
}

/**
 * The client address for the per-address budget. By default the connection's peer: a header
 * such as cf-connecting-ip or x-forwarded-for is whatever the client wrote unless a proxy in
 * front overwrites it, so one is read only when TRUSTED_PROXY_HEADER names it. Then the header's
 * last comma-separated value counts (a proxy appends what it saw; a client can only prepend),
 * falling back to the peer when it is missing or not an address. Else "unknown" (all such
 * requests share one budget).
 */
export function clientIp(req: Request, info?: ConnInfo, trustedHeader?: string): string {
  const header = trustedHeader ? req.headers.get(trustedHeader)?.slice(-200) : undefined;
  const candidates = [header?.split(",").at(-1), info?.remoteAddr?.hostname];
  for (const c of candidates) {
    const key = c ? ipKey(c) : undefined;
    if (key) return key;
  }
  return "unknown";
}

/**
 * Takes one token for this request from the caller's user budget and the client IP's budget
 * for `scope`, all or nothing, in one database round trip; 429 rate_limited with Retry-After
 * when either is spent. The service role has no user budget, only its address's.
 */
export async function takeRateLimit(
  app: App,
  scope: string,
  caller: Caller,
  ip: string,
): Promise<void> {
  const rl = app.config.rateLimit;
  if (!rl.enabled) return;
  const keys = [`${scope}:ip:${ip}`];
  const limits = [rl.perIpPerMinute];
  if (caller.role === "authenticated" && caller.userId) {
    keys.push(`${scope}:user:${caller.userId}`);
    limits.push(rl.perUserPerMinute);
  }
  const [row] = await app.sql`select allowed, retry_after_seconds, limited_key
    from settle.take_rate_limit(${keys}, ${limits}, ${rl.windowSeconds}, ${app.now()})`;
  if (row.allowed) return;
  const retryAfter = String(row.retry_after_seconds);
  const who = String(row.limited_key).includes(":user:") ? "this user" : "this address";
  throw new HttpError(
    429,
    "rate_limited",
    `too many ${scope} requests from ${who}; retry in ${retryAfter} s`,
    undefined,
    { "retry-after": retryAfter },
  );
}
