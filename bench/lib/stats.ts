// Latency percentiles (nearest rank) and rounding for the report.

export interface Latency {
  p50: number;
  p95: number;
  p99: number;
  mean: number;
  max: number;
}

export function percentile(sorted: Float64Array | number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

export function latency(samplesMs: number[]): Latency {
  const s = Float64Array.from(samplesMs).sort();
  let sum = 0;
  for (const v of s) sum += v;
  return {
    p50: round(percentile(s, 50), 2),
    p95: round(percentile(s, 95), 2),
    p99: round(percentile(s, 99), 2),
    mean: round(s.length ? sum / s.length : NaN, 2),
    max: round(s.length ? s[s.length - 1] : NaN, 2),
  };
}

export function round(v: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}
