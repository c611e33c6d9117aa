// A job's server-sent events (GET /jobs/{id}/events) read with fetch, so that the
// request carries the bearer token (EventSource cannot send an Authorization header).
import { createParser } from "eventsource-parser";
import { ApiProblem, authFetch, type Dashboard, type Job } from "../api/client";

export interface EventHandlers {
  progress(dashboard: Dashboard): void;
  end(job: Job | { status: "DELETED" }): void;
  problem(problem: ApiProblem): void;
  connected?(connected: boolean): void;
}

const RETRY_MS = 2000;

/** Follow a job's events until its end event, reconnecting after a lost stream. */
export function followJob(jobId: string, handlers: EventHandlers): () => void {
  const abort = new AbortController();
  let ended = false;

  async function once(): Promise<void> {
    const response = await authFetch(`/jobs/${encodeURIComponent(jobId)}/events`, {
      headers: { Accept: "text/event-stream" },
      signal: abort.signal,
    });
    if (!response.ok || !response.body) {
      const body: unknown = await response.json().catch(() => undefined);
      throw new ApiProblem(response.status, body as never);
    }
    handlers.connected?.(true);
    const parser = createParser({
      onEvent(message) {
        if (message.event === "progress") handlers.progress(JSON.parse(message.data) as Dashboard);
        if (message.event === "end") {
          ended = true;
          handlers.end(JSON.parse(message.data) as Job);
        }
      },
    });
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      parser.feed(value);
    }
  }

  void (async () => {
    while (!ended && !abort.signal.aborted) {
      try {
        await once();
      } catch (error) {
        if (abort.signal.aborted) return;
        if (error instanceof ApiProblem && error.status < 500 && error.status !== 429) {
          handlers.problem(error); // 404 and the like: retrying changes nothing
          return;
        }
      }
      handlers.connected?.(false);
      if (ended || abort.signal.aborted) return;
      await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
    }
  })();
  return () => abort.abort();
}
