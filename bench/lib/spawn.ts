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
      ...(opts.v8Flags?.length ? [`--v8-flags=${opts.v8Flags.join(",")}`] : []),
      new URL("../server.ts", import.meta.url).pathname,
      mode,
      ...args,
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const decoder = new TextDecoder();

  // Forward stderr (errors must be seen) and pick the inspector's address out of it.
  let inspectorUrl: string | undefined;
  let resolveInspector: () => void = () => {};
  const inspectorSeen = new Promise<void>((r) => (resolveInspector = r));
  (async () => {
    let pending = "";
    for await (const chunk of child.stderr) {
      const text = decoder.decode(chunk, { stream: true });
      pending += text;
      const m = pending.match(/Debugger listening on (ws:\/\/\S+)/);
      if (m && !inspectorUrl) {
        inspectorUrl = m[1];
        resolveInspector();
        continue;
      }
      if (!/Visit chrome:\/\/inspect|Debugger listening/.test(text)) {
        await Deno.stderr.write(chunk);
      }
    }
  })();

  const reader = child.stdout.getReader();
  let buffered = "";
  while (!buffered.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`bench/server.ts ${mode} exited before it was ready`);
    buffered += decoder.decode(value, { stream: true });
  }
  const info = JSON.parse(buffered.slice(0, buffered.indexOf("\n")));
  // Keep draining stdout so the child never blocks on a full pipe.
  (async () => {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      await Deno.stdout.write(value);
    }
  })();
  if (opts.inspect) await inspectorSeen;
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
