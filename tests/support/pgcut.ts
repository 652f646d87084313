// A TCP proxy in front of Postgres that can cut one connection in the middle of a chosen statement
// (adapted from bench/lib/pgproxy.ts, which counts instead of cutting).
//
// "before_send": the statement whose text contains the marker never reaches the server; the
// connection is closed instead. "after_commit": the statement runs and its implicit transaction
// commits (the server answers its Sync), but that answer is thrown away and the connection
// closed, so the client sees a dropped connection for work that did happen.

export type CutMode = "before_send" | "after_commit";

interface Armed {
  marker: string;
  mode: CutMode;
  done: () => void;
}

/** Splits a byte stream into protocol messages (1 type byte + int32 length including itself). */
class Framer {
  #pending = new Uint8Array(0);
  constructor(private startup: boolean) {}

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

export class CuttingProxy {
  #listener: Deno.TcpListener;
  #conns = new Set<Deno.Conn>();
  #armed: Armed | undefined;
  readonly target: { hostname: string; port: number };
  /** Cuts made so far. */
  cuts = 0;

  private constructor(listener: Deno.TcpListener, target: { hostname: string; port: number }) {
    this.#listener = listener;
    this.target = target;
    this.#accept();
  }

  static start(targetUrl: string): CuttingProxy {
    const u = new URL(targetUrl);
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    return new CuttingProxy(listener, { hostname: u.hostname, port: Number(u.port || 5432) });
  }

  /** targetUrl with the proxy's address in place of the server's. */
  url(targetUrl: string): string {
    const u = new URL(targetUrl);
    u.hostname = "127.0.0.1";
    u.port = String((this.#listener.addr as Deno.NetAddr).port);
    return u.toString();
  }

  /** Cuts the next statement whose text contains marker; resolves once it is cut. */
  arm(marker: string, mode: CutMode): Promise<void> {
    return new Promise((done) => (this.#armed = { marker, mode, done }));
  }

  async #accept() {
    for await (const client of this.#listener) {
      client.setNoDelay(true);
      let server: Deno.TcpConn;
      try {
        server = await Deno.connect(this.target);
      } catch {
        client.close();
        continue;
      }
      server.setNoDelay(true);
      this.#conns.add(client);
      this.#conns.add(server);
      this.#pipe(client, server);
    }
  }

  #pipe(client: Deno.TcpConn, server: Deno.TcpConn) {
    const close = () => {
      for (const c of [client, server]) {
        this.#conns.delete(c);
        try {
          c.close();
        } catch { /* already closed */ }
      }
    };
    const fromClient = new Framer(true);
    let fromServer: Framer | undefined;
    // after_commit: the cut waits for the server's ReadyForQuery answering the Sync that
    // follows the statement's Execute.
    let cut: Armed | undefined;
    let syncs = 0;
    let cutAtReady = 0;
    let readies = 0;

    const finish = (c: Armed) => {
      this.cuts++;
      close();
      c.done();
    };

    (async () => {
      const b = new Uint8Array(64 * 1024);
      try {
        for (;;) {
          const n = await client.read(b);
          if (n === null) break;
          const chunk = b.slice(0, n);
          const types = fromClient.types(chunk);
          const armed = this.#armed;
          if (!cut && armed && new TextDecoder("latin1").decode(chunk).includes(armed.marker)) {
            this.#armed = undefined;
            cut = armed;
            if (armed.mode === "before_send") return finish(armed);
            fromServer = new Framer(false);
          }
          if (cut && cutAtReady === 0) {
            for (const t of types) {
              if (t === "S") syncs++;
              if (t === "E") cutAtReady = syncs + 1;
            }
          }
          let w = 0;
          while (w < n) w += await server.write(chunk.subarray(w));
        }
      } catch { /* closed */ }
      close();
    })();

    (async () => {
      const b = new Uint8Array(64 * 1024);
      try {
        for (;;) {
          const n = await server.read(b);
          if (n === null) break;
          const chunk = b.slice(0, n);
          if (cut && fromServer) {
            readies += fromServer.types(chunk).filter((t) => t === "Z").length;
            if (cutAtReady > 0 && readies >= cutAtReady) return finish(cut);
          }
          let w = 0;
          while (w < n) w += await client.write(chunk.subarray(w));
        }
      } catch { /* closed */ }
      close();
    })();
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
    this.#conns.clear();
  }
}
