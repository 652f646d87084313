// Small helpers every Razorpay resource uses: Razorpay-style random ids and deep copies.

const ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

export function randomId(prefix: string): string {
  const out: string[] = [];
  const buf = new Uint8Array(32);
  while (out.length < 14) {
    crypto.getRandomValues(buf);
    for (const b of buf) {
      // 248 = 4 * 62: rejecting the tail keeps every character equally likely.
      if (b < 248 && out.length < 14) out.push(ALNUM[b % 62]);
    }
  }
  return prefix + out.join("");
}

export const clone = <T>(v: T): T => structuredClone(v);
