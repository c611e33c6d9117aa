// Pure helpers of the page: money, durations, the budget bar's colour, sorting jobs.
import type { JobStatus } from "../api/client";

/** An exact USD decimal string, shown with cents (or more digits for sub-cent amounts). */
export function usd(amount: string | number | null | undefined): string {
  if (amount === null || amount === undefined || amount === "") return "–";
  const value = typeof amount === "number" ? amount : Number(amount);
  if (!Number.isFinite(value)) return String(amount);
  if (value !== 0 && Math.abs(value) < 0.01) {
    return `$${value.toPrecision(2).replace(/\.?0+$/, "")}`;
  }
  return `$${value.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;
}

export type BudgetLevel = "ok" | "warn" | "high";

/** The budget bar's colour: yellow from 75 % spent, orange from 90 %. */
export function budgetLevel(percentSpent: number): BudgetLevel {
  if (percentSpent >= 90) return "high";
  if (percentSpent >= 75) return "warn";
  return "ok";
}

/** Percent of a budget spent, from exact decimal strings (0 for a zero budget). */
export function percentOf(spent: string, limit: string): number {
  const whole = Number(limit);
  if (!(whole > 0)) return 0;
  return Math.min(Math.max((Number(spent) / whole) * 100, 0), 100);
}

/** A duration in seconds as "1 h 02 min", "3 min 05 s" or "42 s". */
export function duration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "–";
  const total = Math.max(0, Math.round(seconds));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  if (h > 0) return `${h} h ${String(m).padStart(2, "0")} min`;
  if (m > 0) return `${m} min ${String(s).padStart(2, "0")} s`;
  return `${s} s`;
}

export function rate(perSecond: number | null | undefined): string {
  if (perSecond === null || perSecond === undefined) return "–";
  return perSecond >= 10 ? `${perSecond.toFixed(0)}/s` : `${perSecond.toFixed(2)}/s`;
}

export function when(iso: string | null | undefined): string {
  if (!iso) return "–";
  const date = new Date(iso);
  return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

export function count(value: number | null | undefined): string {
  return value === null || value === undefined ? "–" : value.toLocaleString("en-US");
}

export type JobSort = "created" | "cost" | "status";

interface Sortable {
  id: string;
  status: JobStatus;
  created_at: string;
  cost_usd: string;
}

const STATUS_ORDER: Record<JobStatus, number> = {
  RUNNING: 0,
  QUEUED: 1,
  FAILED: 2,
  BUDGET_EXCEEDED: 3,
  CANCELLED: 4,
  COMPLETED: 5,
};

/** Jobs sorted: newest first, dearest first, or by status (running first), then newest. */
export function sortJobs<T extends Sortable>(jobs: readonly T[], by: JobSort): T[] {
  const newest = (a: T, b: T) =>
    b.created_at.localeCompare(a.created_at) || a.id.localeCompare(b.id);
  const order: Record<JobSort, (a: T, b: T) => number> = {
    created: newest,
    cost: (a, b) => Number(b.cost_usd) - Number(a.cost_usd) || newest(a, b),
    status: (a, b) => STATUS_ORDER[a.status] - STATUS_ORDER[b.status] || newest(a, b),
  };
  return [...jobs].sort(order[by]);
}

/** The UTC days of the last `days` days up to `today` (included), as YYYY-MM-DD. */
export function dayRange(days: number, today: Date = new Date()): { from: string; to: string } {
  const last = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate()));
  const first = new Date(last.getTime() - (days - 1) * 86_400_000);
  return { from: first.toISOString().slice(0, 10), to: last.toISOString().slice(0, 10) };
}

/** Every UTC day from `from` to `to` included. */
export function eachDay(from: string, to: string): string[] {
  const out: string[] = [];
  for (let t = Date.parse(`${from}T00:00:00Z`); t <= Date.parse(`${to}T00:00:00Z`); t += 86_400_000) {
    out.push(new Date(t).toISOString().slice(0, 10));
  }
  return out;
}

export function shortId(id: string): string {
  return id.length > 12 ? `${id.slice(0, 8)}…` : id;
}
