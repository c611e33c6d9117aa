// The typed REST client: its types are generated from the gateway's OpenAPI document
// (npm run types), so a changed schema breaks the build, not a user.
import createClient from "openapi-fetch";
import type { components, paths } from "./schema";
import { session, setSession } from "../lib/session";

export type Schemas = components["schemas"];
export type Job = Schemas["JobView"];
export type Dashboard = Schemas["Dashboard"];
export type Template = Schemas["TemplateView"];
export type Problem = Schemas["ProblemDetails"];
export type JobStatus = Job["status"];
export type Webhook = Schemas["WebhookView"];
export type WebhookEvent = Schemas["WebhookEvent"];
export type Delivery = Schemas["DeliveryView"];
export type OutputFormat = Job["output_format"];

export const api = createClient<paths>({ baseUrl: globalThis.location?.origin ?? "" });

api.use({
  onRequest({ request }) {
    const current = session();
    if (current) request.headers.set("Authorization", `Bearer ${current.token}`);
    return request;
  },
  onResponse({ response }) {
    // An expired or revoked token: sign out, the page shows the sign-in form.
    if (response.status === 401 && session()) setSession(null);
    return response;
  },
});

/** An answer of the API that is not a success: its problem details. */
export class ApiProblem extends Error {
  readonly status: number;
  readonly problem: Problem;

  constructor(status: number, problem: Partial<Problem> | undefined) {
    const detail = problem?.detail ?? `the gateway answered ${status}`;
    super(detail);
    this.status = status;
    this.problem = {
      type: problem?.type ?? "about:blank",
      title: problem?.title ?? String(status),
      status,
      detail,
      errors: problem?.errors ?? [],
      instance: problem?.instance ?? null,
    };
  }
}

interface Result<T> {
  data?: T;
  error?: unknown;
  response: Response;
}

/** The data of an API result, or an ApiProblem thrown. */
export function ok<T>(result: Result<T>): T {
  if (result.error !== undefined || !result.response.ok) {
    throw new ApiProblem(result.response.status, result.error as Partial<Problem> | undefined);
  }
  return result.data as T;
}

/** fetch with the bearer token, for bodies the typed client does not send (files, YAML). */
export async function authFetch(path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  const current = session();
  if (current) headers.set("Authorization", `Bearer ${current.token}`);
  const response = await fetch(path, { ...init, headers });
  if (response.status === 401 && current) setSession(null);
  return response;
}

/** The JSON body of a fetch answer, or an ApiProblem for an error answer. */
export async function json<T>(response: Response): Promise<T> {
  const body: unknown = await response.json().catch(() => undefined);
  if (!response.ok) throw new ApiProblem(response.status, body as Partial<Problem> | undefined);
  return body as T;
}

export const FINAL: ReadonlySet<JobStatus> = new Set([
  "COMPLETED",
  "FAILED",
  "CANCELLED",
  "BUDGET_EXCEEDED",
]);
export const STATUSES: JobStatus[] = [
  "QUEUED",
  "RUNNING",
  "COMPLETED",
  "FAILED",
  "CANCELLED",
  "BUDGET_EXCEEDED",
];
export const FORMATS: OutputFormat[] = ["jsonl", "parquet", "csv"];

/** Every event a webhook may subscribe to, as the API names it, and what it means. */
export const WEBHOOK_EVENTS: Record<WebhookEvent, string> = {
  "job.completed": "a job completed",
  "job.failed": "a job failed",
  "job.budget_exceeded": "a job stopped at its budget",
  "job.cancelled": "a job was cancelled",
  "job.budget_threshold": "a job spent 75 % and 90 % of its budget",
};
