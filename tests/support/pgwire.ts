// A TCP proxy in front of Postgres and a splitter of its wire protocol, shared by the counting
// proxy (bench/lib/pgproxy.ts) and the cutting one (tests/support/pgcut.ts).

export type Target = { hostname: string; port: number };

/** Splits a byte stream into protocol messages (1 type byte + int32 length including itself). */
export class Framer {
  #pending = new Uint8Array(0);
  /** `startup`: the stream opens with untyped startup packets (the client's side does). */
  constructor(private startup: boolean) {}

  /** The type bytes of the messages this chunk completes (a message may span chunks). */
  types(chunk: Uint8Array): string[] {
    const buf = new Uint8Array(this.#pending.length + chunk.length);
    buf.set(this.#pending);
    buf.set(chunk, this.#pending.length);
    const out: string[] = [];
    let i = 0;
    for (;;) {
      if (this.startup) {
        if (buf.length - i < 8) break;
        const len = new DataView(buf.buffer, i).getInt32(0);
        if (buf.length - i < len) break;
        const code = new DataView(buf.buffer, i).getInt32(4);
        i += len;
        // SSLRequest / GSSENCRequest are followed by another startup packet.
        if (code !== 80877103 && code !== 80877104) this.startup = false;
        continue;
      }
      if (buf.length - i < 5) break;
      const len = new DataView(buf.buffer, i + 1).getInt32(0);
      if (buf.length - i < len + 1) break;
      out.push(String.fromCharCode(buf[i]));
      i += len + 1;
    }
    this.#pending = buf.slice(i);
    return out;
  }
}

/**
 * Copies `from` to `to` until `from` ends or fails. `inspect` sees each chunk first and returns
 * false to stop without forwarding it.
 */
export async function relay(
  from: Deno.Conn,
  to: Deno.Conn,
  inspect: (chunk: Uint8Array) => boolean,
): Promise<void> {
  const b = new Uint8Array(64 * 1024);
  try {
    for (;;) {
      const n = await from.read(b);
      if (n === null) return;
      const chunk = b.slice(0, n);
      if (!inspect(chunk)) return;
      let w = 0;
      while (w < n) w += await to.write(chunk.subarray(w));
    }
  } catch { /* closed */ }
}

export function closeQuietly(c: Deno.Conn) {
  try {
    c.close();
  } catch { /* already closed */ }
}

/**
 * Listens on a free local port and opens a connection to the target for each client; a
 * subclass relays the pair in `connected`.
 */
export abstract class TcpProxy {
  #listener: Deno.TcpListener;
  #conns = new Set<Deno.Conn>();
  readonly target: Target;

  protected constructor(targetUrl: string) {
    const u = new URL(targetUrl);
    this.target = { hostname: u.hostname, port: Number(u.port || 5432) };
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    // The loop calls `connected` only after its first await, once subclass fields exist.
    this.#accept();
  }

  /** targetUrl with the proxy's address in place of the server's. */
  url(targetUrl: string): string {
    const u = new URL(targetUrl);
    u.hostname = "127.0.0.1";
    u.port = String((this.#listener.addr as Deno.NetAddr).port);
    return u.toString();
  }

  /** Relays one client and its server connection; `close` closes both. */
  protected abstract connected(
    client: Deno.TcpConn,
    server: Deno.TcpConn,
    close: () => void,
  ): void;

  async #accept() {
    for await (const client of this.#listener) {
      // Accepted sockets do not get TCP_NODELAY by default; without it, Nagle's algorithm
      // holds back pipelined replies and the proxy itself would add 40 ms stalls.
      client.setNoDelay(true);
      let server: Deno.TcpConn;
      try {
        server = await Deno.connect(this.target);
      } catch {
        closeQuietly(client);
        continue;
      }
      server.setNoDelay(true);
      this.#conns.add(client);
      this.#conns.add(server);
      this.connected(client, server, () => {
        for (const c of [client, server]) {
          this.#conns.delete(c);
          closeQuietly(c);
        }
      });
    }
  }

  close() {
    try {
      this.#listener.close();
    } catch { /* closed */ }
    for (const c of this.#conns) closeQuietly(c);
    this.#conns.clear();
  }
}
