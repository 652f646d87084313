// The dev server's stand-ins for pg_cron: a function POSTed with the service role key every N
// seconds (an environment variable; 0 turns it off), never overlapping itself, quiet unless its
// answer says something happened.

export interface Job {
  /** The function called, e.g. "reconcile". */
  fn: string;
  /** Its name in the start-up banner (13 characters, padded). */
  label: string;
  /** What the banner says before the interval ("every", "dispatched every"). */
  every?: string;
  /** The variable holding the interval in seconds, and its default. */
  env: string;
  defaultSeconds: number;
  /** A JSON body to send ("{}" for reconcile); none by default. */
  body?: string;
  /** Whether a run's answer is worth a log line (a non-200 answer always is). */
  noteworthy(summary: Record<string, unknown>): boolean;
}

/** The interval, or the process exits as it always has on a bad value. */
function intervalSeconds(job: Job): number {
  const every = Number(Deno.env.get(job.env)?.trim() || String(job.defaultSeconds));
  if (!Number.isInteger(every) || every < 0) {
    console.error(`${job.env} must be a whole number of seconds (0 turns it off)`);
    Deno.exit(1);
  }
  return every;
}

async function runOnce(job: Job, stack: { functionsUrl: string; serviceRoleKey: string }) {
  try {
    const headers: Record<string, string> = { authorization: `Bearer ${stack.serviceRoleKey}` };
    if (job.body !== undefined) headers["content-type"] = "application/json";
    const res = await fetch(`${stack.functionsUrl}/${job.fn}`, {
      method: "POST",
      headers,
      body: job.body,
    });
    const summary = await res.json();
    if (res.status !== 200 || job.noteworthy(summary)) {
      console.log(JSON.stringify({ job: job.fn, status: res.status, ...summary }));
    }
  } catch (err) {
    console.error(JSON.stringify({ job: job.fn, error: String(err) }));
  }
}

/** Starts the job's timer (undefined when it is off) and prints its banner line. */
export function startJob(
  job: Job,
  stack: { functionsUrl: string; serviceRoleKey: string },
): ReturnType<typeof setInterval> | undefined {
  const every = intervalSeconds(job);
  let running = false;
  const timer = every === 0 ? undefined : setInterval(async () => {
    if (running) return;
    running = true;
    try {
      await runOnce(job, stack);
    } finally {
      running = false;
    }
  }, every * 1000);
  const label = job.label.padEnd(13);
  console.log(
    timer
      ? `  ${label} ${job.every ?? "every"} ${every} s (${job.env}; 0 turns it off)\n`
      : `  ${label} timer off (${job.env}=0)\n`,
  );
  return timer;
}
