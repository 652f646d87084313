// Starts bench/server.ts in a child process and reads the JSON line it prints when ready.

export interface ServerProcess {
  functionsUrl: string;
  simulatorUrl?: string;
  /** The Stripe simulator's own port (sim mode). */
  stripeUrl?: string;
  /** Deno.memoryUsage() of the server (stack mode). */
  memoryUrl?: string;
  pid: number;
  inspectorUrl?: string;
  stop(): Promise<void>;
}

/**
 * The function server's V8 flags, as docs/operations.md ("Memory") tells an operator to run it:
 * V8's young generation capped at 4 MB a semi-space (its default grows to 16 MB and more, which
 * costs 50-75 MB of resident memory; the cap costs at most about 5% more CPU per webhook). BENCH_SERVER_V8_FLAGS replaces
 * them (comma-separated; empty for V8's defaults).
 */
export const SERVER_V8_FLAGS = ["--max-semi-space-size=4"];

/**
 * BENCH_SERVER_NICE: the scheduling priority (nice value) given to the HTTP servers under test,
 * settle's function servers and the peer's alike, for a diagnosis: on 2 cores a single-threaded
 * server shares the CPU with every runnable Postgres backend, which a production deployment (the
 * functions and the database on their own machines) does not. Every thread of the process is set
 * (Linux applies a nice value per thread); below 0 needs root. Unset: the servers run as started.
 */
export async function applyServerNice(pid: number): Promise<void> {
  const nice = Deno.env.get("BENCH_SERVER_NICE");
  if (nice === undefined || nice === "") return;
  if (!/^-?\d+$/.test(nice)) throw new Error(`BENCH_SERVER_NICE must be an integer, not ${nice}`);
  const tids: string[] = [];
  for await (const t of Deno.readDir(`/proc/${pid}/task`)) tids.push(t.name);
  const o = await new Deno.Command("renice", { args: ["-n", nice, "-p", ...tids], stdout: "null" })
    .output();
  if (!o.success) {
    throw new Error(`renice ${nice} of ${pid} failed: ${new TextDecoder().decode(o.stderr)}`);
  }
}

/** --v8-flags for the child: for a function server (stack) SERVER_V8_FLAGS, then the caller's. */
function v8FlagsArg(mode: string, flags: string[] = []): string[] {
  const env = Deno.env.get("BENCH_SERVER_V8_FLAGS");
  const server = env === undefined ? SERVER_V8_FLAGS : env.split(",").filter(Boolean);
  const all = [...(mode === "stack" ? server : []), ...flags];
  return all.length ? [`--v8-flags=${all.join(",")}`] : [];
}

/**
 * Forwards the child's stderr (errors must be seen) except the inspector's banner, and
 * resolves with the inspector's address once it is printed.
 */
function forwardStderr(stderr: ReadableStream<Uint8Array>): Promise<string> {
  const decoder = new TextDecoder();
  return new Promise((resolve) => {
    (async () => {
      let pending = "";
      let seen = false;
      for await (const chunk of stderr) {
        const text = decoder.decode(chunk, { stream: true });
        pending += text;
        const m = pending.match(/Debugger listening on (ws:\/\/\S+)/);
        if (m && !seen) {
          seen = true;
          resolve(m[1]);
          continue;
        }
        if (!/Visit chrome:\/\/inspect|Debugger listening/.test(text)) {
          await Deno.stderr.write(chunk);
        }
      }
    })();
  });
}

/** The JSON line the server prints when ready; the rest of its stdout is forwarded. */
async function readReadyLine(stdout: ReadableStream<Uint8Array>, mode: string) {
  const decoder = new TextDecoder();
  const reader = stdout.getReader();
  let buffered = "";
  while (!buffered.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`bench/server.ts ${mode} exited before it was ready`);
    buffered += decoder.decode(value, { stream: true });
  }
  // Keep draining stdout so the child never blocks on a full pipe.
  (async () => {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      await Deno.stdout.write(value);
    }
  })();
  return JSON.parse(buffered.slice(0, buffered.indexOf("\n")));
}

export async function startServer(
  mode: "stack" | "nodb" | "echo" | "sim",
  args: string[] = [],
  opts: { inspect?: boolean; v8Flags?: string[] } = {},
): Promise<ServerProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      ...(opts.inspect ? ["--inspect=127.0.0.1:0"] : []),
      ...v8FlagsArg(mode, opts.v8Flags),
      new URL("../server.ts", import.meta.url).pathname,
      mode,
      ...args,
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const inspector = forwardStderr(child.stderr);
  const info = await readReadyLine(child.stdout, mode);
  const inspectorUrl = opts.inspect ? await inspector : undefined;
  if (mode === "stack") await applyServerNice(info.pid);
  const writer = child.stdin.getWriter();
  return {
    functionsUrl: info.functionsUrl,
    simulatorUrl: info.simulatorUrl,
    stripeUrl: info.stripeUrl,
    memoryUrl: info.memoryUrl,
    pid: info.pid,
    inspectorUrl,
    async stop() {
      await writer.close();
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await child.status;
      clearTimeout(timer);
    },
  };
}
