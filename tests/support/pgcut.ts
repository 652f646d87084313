// A TCP proxy in front of Postgres that can cut one connection in the middle of a chosen statement
// (the counting one, bench/lib/pgproxy.ts, shares its relaying: support/pgwire.ts).
//
// "before_send": the statement whose text contains the marker never reaches the server; the
// connection is closed instead. "after_commit": the statement runs and its implicit transaction
// commits (the server answers its Sync, or the simple query itself), but that answer is thrown
// away and the connection closed, so the client sees a dropped connection for work that did
// happen.
import { Framer, relay, TcpProxy } from "./pgwire.ts";

export type CutMode = "before_send" | "after_commit";

interface Armed {
  marker: string;
  mode: CutMode;
  done: () => void;
}

export class CuttingProxy extends TcpProxy {
  #armed: Armed | undefined;
  /** Cuts made so far. */
  cuts = 0;

  static start(targetUrl: string): CuttingProxy {
    return new CuttingProxy(targetUrl);
  }

  /** Cuts the next statement whose text contains marker; resolves once it is cut. */
  arm(marker: string, mode: CutMode): Promise<void> {
    return new Promise((done) => (this.#armed = { marker, mode, done }));
  }

  protected connected(client: Deno.TcpConn, server: Deno.TcpConn, close: () => void) {
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
      return false;
    };

    relay(client, server, (chunk) => {
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
          // A simple query (a statement without parameters) is answered by one ReadyForQuery.
          if (t === "Q") cutAtReady = ++syncs;
        }
      }
      return true;
    }).then(close);

    relay(server, client, (chunk) => {
      if (cut && fromServer) {
        readies += fromServer.types(chunk).filter((t) => t === "Z").length;
        if (cutAtReady > 0 && readies >= cutAtReady) return finish(cut);
      }
      return true;
    }).then(close);
  }
}
