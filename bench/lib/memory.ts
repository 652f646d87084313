// The memory phase's samples: the function server's resident set (from /proc) and its V8 heap
// (Deno.memoryUsage() read from the server's memory port, bench/server.ts).
import { round } from "./stats.ts";

export interface MemorySample {
  rssMb: number;
  /** V8's heap: what it has reserved (total) and what live and not yet collected objects use. */
  heapTotalMb: number;
  heapUsedMb: number;
  /** ArrayBuffers and other memory outside the V8 heap that JS objects hold. */
  externalMb: number;
  /** The young generation (new_space) and the old generation (old_space) within heapTotal. */
  newSpaceMb: number;
  oldSpaceMb: number;
}

/** One chunk's figures: means over its samples, and the highest resident set. */
export interface MemoryChunk {
  events: number;
  meanRssMb: number;
  maxRssMb: number;
  meanHeapTotalMb: number;
  meanHeapUsedMb: number;
  meanNewSpaceMb: number;
  meanOldSpaceMb: number;
  meanExternalMb: number;
  eventsPerSec: number;
  /** The server's CPU time (user + system) per event over the chunk, garbage collection included. */
  serverCpuUsPerEvent: number;
  /** With --memory-live: heapUsed right after a forced full GC at the chunk's end. */
  liveHeapMb?: number;
}

const MB = 1024 * 1024;

export async function rssMb(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  return Number(status.match(/VmRSS:\s+(\d+)/)?.[1] ?? NaN) / 1024;
}

export async function sample(pid: number, memoryUrl: string): Promise<MemorySample> {
  const [rss, res] = await Promise.all([rssMb(pid), fetch(memoryUrl)]);
  const m = await res.json() as Deno.MemoryUsage & { spaces: Record<string, number> };
  return {
    rssMb: rss,
    heapTotalMb: m.heapTotal / MB,
    heapUsedMb: m.heapUsed / MB,
    externalMb: m.external / MB,
    newSpaceMb: (m.spaces.new_space ?? 0) / MB,
    oldSpaceMb: (m.spaces.old_space ?? 0) / MB,
  };
}

/** Samples every everyMs until stopped; stop() takes one last sample and returns them all. */
export function startSampling(pid: number, memoryUrl: string, everyMs = 200) {
  const samples: MemorySample[] = [];
  let pending = Promise.resolve();
  const timer = setInterval(() => {
    pending = pending.then(() => sample(pid, memoryUrl)).then((s) => void samples.push(s));
  }, everyMs);
  return {
    async stop(): Promise<MemorySample[]> {
      clearInterval(timer);
      await pending;
      samples.push(await sample(pid, memoryUrl));
      return samples;
    },
  };
}

/** Runs a full GC in the server (started with --expose-gc) and reads what is still reachable. */
export async function liveHeapMb(memoryUrl: string): Promise<number> {
  const m = await (await fetch(`${memoryUrl}/?gc=1`)).json() as Deno.MemoryUsage;
  return round(m.heapUsed / MB, 1);
}

const mean = (xs: number[]) => round(xs.reduce((a, b) => a + b, 0) / xs.length, 1);

export function summarize(
  events: number,
  samples: MemorySample[],
  load: { eventsPerSec: number; serverCpuUsPerEvent: number },
): MemoryChunk {
  return {
    events,
    meanRssMb: mean(samples.map((s) => s.rssMb)),
    maxRssMb: round(Math.max(...samples.map((s) => s.rssMb)), 1),
    meanHeapTotalMb: mean(samples.map((s) => s.heapTotalMb)),
    meanHeapUsedMb: mean(samples.map((s) => s.heapUsedMb)),
    meanNewSpaceMb: mean(samples.map((s) => s.newSpaceMb)),
    meanOldSpaceMb: mean(samples.map((s) => s.oldSpaceMb)),
    meanExternalMb: mean(samples.map((s) => s.externalMb)),
    eventsPerSec: round(load.eventsPerSec, 1),
    serverCpuUsPerEvent: round(load.serverCpuUsPerEvent, 0),
  };
}
