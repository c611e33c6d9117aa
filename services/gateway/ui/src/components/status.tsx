import type { JobStatus } from "../api/client";

const WORDS: Record<JobStatus, string> = {
  QUEUED: "Queued",
  RUNNING: "Running",
  COMPLETED: "Completed",
  FAILED: "Failed",
  CANCELLED: "Cancelled",
  BUDGET_EXCEEDED: "Budget exceeded",
};

export function StatusBadge({ status }: { status: JobStatus }) {
  return (
    <span class={`badge ${status.toLowerCase()}`} data-testid="status" data-status={status}>
      {WORDS[status]}
    </span>
  );
}
