// A minimal HTTP/1.1 keep-alive client: one TCP connection per sender, requests pre-encoded.
// fetch() costs the load generator tens of microseconds per request on a 2-core machine where
// it shares the CPU with the server and Postgres; this keeps the sender's share small.

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const CRLFCRLF = [13, 10, 13, 10];

export interface Reply {
  status: number;
  body: string;
}

/** A request as the exact bytes to write. */
export function encodeRequest(
  host: string,
  method: string,
  path: string,
  headers: Record<string, string>,
  body: string,
): Uint8Array {
  const bodyBytes = encoder.encode(body);
  let head =
    `${method} ${path} HTTP/1.1\r\nhost: ${host}\r\ncontent-length: ${bodyBytes.length}\r\n`;
  for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`;
  const headBytes = encoder.encode(head + "\r\n");
  const out = new Uint8Array(headBytes.length + bodyBytes.length);
  out.set(headBytes);
  out.set(bodyBytes, headBytes.length);
  return out;
}

function indexOfSeq(buf: Uint8Array, end: number, seq: number[], from = 0): number {
  outer: for (let i = from; i <= end - seq.length; i++) {
    for (let j = 0; j < seq.length; j++) if (buf[i + j] !== seq[j]) continue outer;
    return i;
  }
  return -1;
}

export class HttpConnection {
  #buf = new Uint8Array(64 * 1024);
  #len = 0;

  private constructor(readonly conn: Deno.TcpConn) {}

  static async open(url: string): Promise<HttpConnection> {
    const u = new URL(url);
    const conn = await Deno.connect({ hostname: u.hostname, port: Number(u.port) });
    conn.setNoDelay(true);
    return new HttpConnection(conn);
  }

  close() {
    try {
      this.conn.close();
    } catch { /* already closed */ }
  }

  async #fill(): Promise<void> {
    if (this.#len === this.#buf.length) {
      const bigger = new Uint8Array(this.#buf.length * 2);
      bigger.set(this.#buf);
      this.#buf = bigger;
    }
    const n = await this.conn.read(this.#buf.subarray(this.#len));
    if (n === null) throw new Error("connection closed by the server");
    this.#len += n;
  }

  #consume(n: number) {
    this.#buf.copyWithin(0, n, this.#len);
    this.#len -= n;
  }

  /** Writes one request and reads its whole response. */
  async request(bytes: Uint8Array): Promise<Reply> {
    let written = 0;
    while (written < bytes.length) written += await this.conn.write(bytes.subarray(written));

    let headEnd: number;
    while ((headEnd = indexOfSeq(this.#buf, this.#len, CRLFCRLF)) < 0) await this.#fill();
    const head = decoder.decode(this.#buf.subarray(0, headEnd));
    this.#consume(headEnd + 4);
    const lines = head.split("\r\n");
    const status = Number(lines[0].split(" ")[1]);
    let length = -1;
    let chunked = false;
    for (const line of lines.slice(1)) {
      const i = line.indexOf(":");
      const name = line.slice(0, i).trim().toLowerCase();
      const value = line.slice(i + 1).trim();
      if (name === "content-length") length = Number(value);
      if (name === "transfer-encoding" && value.toLowerCase().includes("chunked")) chunked = true;
    }
    if (!chunked) {
      if (length < 0) throw new Error("response without content-length or chunked encoding");
      while (this.#len < length) await this.#fill();
      const body = decoder.decode(this.#buf.subarray(0, length));
      this.#consume(length);
      return { status, body };
    }
    let body = "";
    for (;;) {
      let lineEnd: number;
      while ((lineEnd = indexOfSeq(this.#buf, this.#len, [13, 10])) < 0) await this.#fill();
      const size = parseInt(decoder.decode(this.#buf.subarray(0, lineEnd)), 16);
      this.#consume(lineEnd + 2);
      while (this.#len < size + 2) await this.#fill();
      body += decoder.decode(this.#buf.subarray(0, size));
      this.#consume(size + 2);
      if (size === 0) return { status, body };
    }
  }
}
