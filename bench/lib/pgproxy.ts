// A counting TCP proxy in front of Postgres: how many statements and round trips a request
// costs, read off the wire (frontend protocol messages), without touching the code under test.

export interface WireCounts {
  /** Statements executed: Bind messages (extended protocol) plus simple Query messages. */
  statements: number;
  /** Parse messages: statements parsed (and planned) by the server again. */
  parses: number;
  /** Times a client sent something after the server had answered: waits for the network. */
  roundTrips: number;
  bytesToServer: number;
  bytesToClient: number;
}

export class PgProxy {
  counts: WireCounts = {
    statements: 0,
    parses: 0,
    roundTrips: 0,
    bytesToServer: 0,
    bytesToClient: 0,
  };
  #listener: Deno.TcpListener;
  #conns: Deno.Conn[] = [];

  private constructor(
    listener: Deno.TcpListener,
    readonly target: { hostname: string; port: number },
  ) {
    this.#listener = listener;
    this.#accept();
  }

  static start(targetUrl: string): PgProxy {
    const u = new URL(targetUrl);
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    return new PgProxy(listener, { hostname: u.hostname, port: Number(u.port || 5432) });
  }

  /** targetUrl with the proxy's address in place of the server's. */
  url(targetUrl: string): string {
    const u = new URL(targetUrl);
    u.hostname = "127.0.0.1";
    u.port = String((this.#listener.addr as Deno.NetAddr).port);
    return u.toString();
  }

  reset() {
    this.counts = { statements: 0, parses: 0, roundTrips: 0, bytesToServer: 0, bytesToClient: 0 };
  }

  async #accept() {
    for await (const client of this.#listener) {
      // Accepted sockets do not get TCP_NODELAY by default; without it, Nagle's algorithm
      // holds back pipelined replies and the proxy itself would add 40 ms stalls.
      (client as Deno.TcpConn).setNoDelay(true);
      const server = await Deno.connect(this.target);
      server.setNoDelay(true);
      this.#conns.push(client, server);
      let serverSpoke = true; // the first client message is a round trip of its own
      // Frontend messages: after the startup packet, 1 type byte + int32 length (incl. itself).
      let startup = true;
      let pending = new Uint8Array(0);
      const parse = (chunk: Uint8Array) => {
        const buf = new Uint8Array(pending.length + chunk.length);
        buf.set(pending);
        buf.set(chunk, pending.length);
        let i = 0;
        for (;;) {
          if (startup) {
            if (buf.length - i < 4) break;
            const len = new DataView(buf.buffer, i).getInt32(0);
            if (buf.length - i < len) break;
            const code = new DataView(buf.buffer, i).getInt32(4);
            i += len;
            // SSLRequest / GSSENCRequest are followed by another startup packet.
            if (code !== 80877103 && code !== 80877104) startup = false;
            continue;
          }
          if (buf.length - i < 5) break;
          const type = String.fromCharCode(buf[i]);
          const len = new DataView(buf.buffer, i + 1).getInt32(0);
          if (buf.length - i < len + 1) break;
          if (type === "B" || type === "Q") this.counts.statements++;
          if (type === "P") this.counts.parses++;
          i += len + 1;
        }
        pending = buf.slice(i);
      };
      const pipe = async (from: Deno.Conn, to: Deno.Conn, toServer: boolean) => {
        const b = new Uint8Array(64 * 1024);
        try {
          for (;;) {
            const n = await from.read(b);
            if (n === null) break;
            const chunk = b.subarray(0, n);
            if (toServer) {
              this.counts.bytesToServer += n;
              if (serverSpoke) this.counts.roundTrips++;
              serverSpoke = false;
              parse(chunk);
            } else {
              this.counts.bytesToClient += n;
              serverSpoke = true;
            }
            let w = 0;
            while (w < n) w += await to.write(chunk.subarray(w));
          }
        } catch { /* closed */ }
        try {
          to.close();
        } catch { /* already closed */ }
      };
      pipe(client, server, true);
      pipe(server, client, false);
    }
  }

  close() {
    try {
      this.#listener.close();
    } catch { /* closed */ }
    for (const c of this.#conns) {
      try {
        c.close();
      } catch { /* closed */ }
    }
  }
}
