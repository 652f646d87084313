// A V8 CPU profile of the server process over the inspector protocol (Deno has no --cpu-prof),
// summarised by function and by where the code comes from.

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  hitCount?: number;
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface ProfileSummary {
  totalMs: number;
  /** Self time by origin: settle's code, each npm package, Deno's runtime, GC, idle. */
  byOrigin: { origin: string; ms: number; pct: number }[];
  /** Self time by function. */
  topSelf: { fn: string; ms: number; pct: number }[];
  /** Time including callees, for the functions settle's request path is made of. */
  inclusive: { fn: string; ms: number; pct: number }[];
}

export class InspectorSession {
  #ws: WebSocket;
  #id = 0;
  #pending = new Map<number, (v: unknown) => void>();

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    ws.onmessage = (e) => {
      const msg = JSON.parse(e.data);
      if (msg.id !== undefined) this.#pending.get(msg.id)?.(msg.result ?? msg.error);
    };
  }

  static async connect(url: string): Promise<InspectorSession> {
    const ws = new WebSocket(url);
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = reject;
    });
    return new InspectorSession(ws);
  }

  send<T>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    const id = ++this.#id;
    return new Promise((resolve) => {
      this.#pending.set(id, resolve as (v: unknown) => void);
      this.#ws.send(JSON.stringify({ id, method, params }));
    });
  }

  async start(intervalUs = 250) {
    await this.send("Profiler.enable");
    await this.send("Profiler.setSamplingInterval", { interval: intervalUs });
    await this.send("Profiler.start");
  }

  async stop(): Promise<Profile> {
    const r = await this.send<{ profile: Profile }>("Profiler.stop");
    return r.profile;
  }

  close() {
    this.#ws.close();
  }
}

function origin(f: CallFrame): string {
  const name = f.functionName;
  if (name === "(garbage collector)") return "V8 garbage collector";
  if (name === "(idle)") return "idle (waiting for I/O)";
  if (name === "(program)") return "V8/Deno native (program)";
  if (name === "(root)") return "root";
  const url = f.url;
  const npm = url.match(/node_modules\/(?:\.deno\/)?((?:@[^/]+\/)?[^/@]+)/);
  if (npm) return `npm:${npm[1]}`;
  if (url.startsWith("ext:") || url.startsWith("node:")) {
    const m = url.match(/^ext:([^/]+)/);
    return `Deno runtime (${m ? m[1] : url.split("/")[0]})`;
  }
  if (url.includes("/shared/")) return "settle shared/";
  if (url.includes("/supabase/functions/")) return "settle functions";
  if (url.includes("/dev/")) return "settle dev/ (stack, simulator)";
  if (url === "") return "native / builtins";
  return url.replace(/^.*\//, "");
}

function label(f: CallFrame): string {
  const file = f.url.replace(/^.*\/(node_modules\/(\.deno\/)?)?/, "").replace(/^file:\/\//, "");
  return `${f.functionName || "(anonymous)"} ${file ? `${file}:${f.lineNumber + 1}` : ""}`.trim();
}

export function summarise(p: Profile, inclusiveOf: RegExp): ProfileSummary {
  const totalUs = p.endTime - p.startTime;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  // Self time from the sample stream (hitCount is approximate when timeDeltas vary).
  const selfUs = new Map<number, number>();
  if (p.samples && p.timeDeltas) {
    for (let i = 0; i < p.samples.length; i++) {
      const dt = p.timeDeltas[i + 1] ?? 0;
      selfUs.set(p.samples[i], (selfUs.get(p.samples[i]) ?? 0) + dt);
    }
  }
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

  const origins = new Map<string, number>();
  const selfByFn = new Map<string, number>();
  const inclByFn = new Map<string, number>();
  for (const n of p.nodes) {
    const us = selfUs.get(n.id) ?? 0;
    if (!us) continue;
    const o = origin(n.callFrame);
    origins.set(o, (origins.get(o) ?? 0) + us);
    const l = label(n.callFrame);
    selfByFn.set(l, (selfByFn.get(l) ?? 0) + us);
    // Inclusive: credit each distinct matching ancestor once.
    const seen = new Set<string>();
    for (let id: number | undefined = n.id; id !== undefined; id = parent.get(id)) {
      const f = byId.get(id)!.callFrame;
      if (!inclusiveOf.test(f.functionName)) continue;
      const key = label(f);
      if (seen.has(key)) continue;
      seen.add(key);
      inclByFn.set(key, (inclByFn.get(key) ?? 0) + us);
    }
  }
  const rows = (m: Map<string, number>, n: number) =>
    [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, us]) => ({
      k,
      ms: Math.round(us / 100) / 10,
      pct: Math.round((us / totalUs) * 1000) / 10,
    }));
  return {
    totalMs: Math.round(totalUs / 1000),
    byOrigin: rows(origins, 20).map(({ k, ms, pct }) => ({ origin: k, ms, pct })),
    topSelf: rows(selfByFn, 30).map(({ k, ms, pct }) => ({ fn: k, ms, pct })),
    inclusive: rows(inclByFn, 30).map(({ k, ms, pct }) => ({ fn: k, ms, pct })),
  };
}
