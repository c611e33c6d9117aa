// Pure helpers of the webhooks screen: which deliveries the page still waits for, an attempt
// in words.

interface Settling {
  id: string;
  status: "pending" | "delivered" | "failed";
  attempt_count: number;
}

interface Attempt {
  attempt: number;
  status_code?: number | null;
  latency_ms?: number | null;
  error?: string | null;
}

/** Awaited deliveries (id → the attempt count that settles it) not yet settled in `items`.
 *
 * A test-send waits for its first attempt; a re-send for one attempt more than it had. A
 * delivery not listed yet (the request is still on the broker) is still awaited.
 */
export function stillAwaited(
  awaited: Readonly<Record<string, number>>,
  items: readonly Settling[],
): Record<string, number> {
  const byId = new Map(items.map((d) => [d.id, d]));
  const left: Record<string, number> = {};
  for (const [id, attempts] of Object.entries(awaited)) {
    const d = byId.get(id);
    if (!d || d.status === "pending" || d.attempt_count < attempts) left[id] = attempts;
  }
  return left;
}

/** "HTTP 200 in 35 ms", "no answer after 3000 ms: timed out", "HTTP 500 in 12 ms: ...". */
export function attemptText(a: Attempt): string {
  const answer = a.status_code ? `HTTP ${a.status_code}` : "no answer";
  const latency =
    a.latency_ms === null || a.latency_ms === undefined
      ? ""
      : ` ${a.status_code ? "in" : "after"} ${a.latency_ms} ms`;
  return `${answer}${latency}${a.error ? `: ${a.error}` : ""}`;
}
