// A counting TCP proxy in front of Postgres: how many statements and round trips a request
// costs, read off the wire (frontend protocol messages), without touching the code under test.
import { closeQuietly, Framer, relay, TcpProxy } from "../../tests/support/pgwire.ts";

export interface WireCounts {
  /** Statements executed: Bind messages (extended protocol) plus simple Query messages. */
  statements: number;
  /** Parse messages and simple queries: statements parsed (and planned) by the server again. */
  parses: number;
  /** Times a client sent something after the server had answered: waits for the network. */
  roundTrips: number;
  bytesToServer: number;
  bytesToClient: number;
}

const zero = (): WireCounts => ({
  statements: 0,
  parses: 0,
  roundTrips: 0,
  bytesToServer: 0,
  bytesToClient: 0,
});

export class PgProxy extends TcpProxy {
  counts: WireCounts = zero();

  static start(targetUrl: string): PgProxy {
    return new PgProxy(targetUrl);
  }

  reset() {
    this.counts = zero();
  }

  protected connected(client: Deno.TcpConn, server: Deno.TcpConn) {
    let serverSpoke = true; // the first client message is a round trip of its own
    const frontend = new Framer(true);
    relay(client, server, (chunk) => {
      this.counts.bytesToServer += chunk.length;
      if (serverSpoke) this.counts.roundTrips++;
      serverSpoke = false;
      for (const type of frontend.types(chunk)) {
        if (type === "B" || type === "Q") this.counts.statements++;
        if (type === "P" || type === "Q") this.counts.parses++;
      }
      return true;
    }).then(() => closeQuietly(server));
    relay(server, client, (chunk) => {
      this.counts.bytesToClient += chunk.length;
      serverSpoke = true;
      return true;
    }).then(() => closeQuietly(client));
  }
}
