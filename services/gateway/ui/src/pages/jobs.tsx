import { useEffect, useRef, useState } from "preact/hooks";
import { Link } from "wouter-preact";
import { api, FINAL, ok, STATUSES, type Job, type JobStatus } from "../api/client";
import { BudgetBar, ProgressBar } from "../components/bars";
import { ProblemNote } from "../components/problem";
import { StatusBadge } from "../components/status";
import { count, shortId, sortJobs, usd, when, type JobSort } from "../lib/format";
import { usePoll } from "../lib/poll";

const LIVE_MS = 2000;
const IDLE_MS = 10_000; // no job active: jobs launched or deleted elsewhere still show

export function JobsPage() {
  const [jobs, setJobs] = useState<Job[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [status, setStatus] = useState<JobStatus | "">("");
  const [sort, setSort] = useState<JobSort>("created");

  const loads = useRef(0);

  async function load() {
    // A poll or a filter asked for before this load may answer after it: only the latest shows.
    const asked = ++loads.current;
    try {
      const page = ok(
        await api.GET("/jobs", {
          params: { query: { limit: 100, ...(status ? { status: [status] } : {}) } },
        }),
      );
      if (asked !== loads.current) return;
      setJobs(page.items);
      setError(null);
    } catch (e) {
      if (asked === loads.current) setError(e);
    }
  }

  useEffect(() => {
    setJobs(null);
    void load();
  }, [status]);
  const live = (jobs ?? []).some((job) => !FINAL.has(job.status));
  usePoll(load, live ? LIVE_MS : IDLE_MS, true);

  const rows = jobs ? sortJobs(jobs, sort) : [];
  return (
    <section>
      <div class="heading">
        <h1>Jobs</h1>
        <Link href="/jobs/new" role="button" data-testid="new-job">
          New job
        </Link>
      </div>
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        <label>
          Status
          <select
            name="status"
            value={status}
            onChange={(e) => setStatus(e.currentTarget.value as JobStatus | "")}
          >
            <option value="">All</option>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s.replace("_", " ").toLowerCase()}
              </option>
            ))}
          </select>
        </label>
        <label>
          Sort by
          <select
            name="sort"
            value={sort}
            onChange={(e) => setSort(e.currentTarget.value as JobSort)}
          >
            <option value="created">Created (newest first)</option>
            <option value="cost">Cost (highest first)</option>
            <option value="status">Status (running first)</option>
          </select>
        </label>
        {live && <p class="live" aria-live="polite">Live: updating every {LIVE_MS / 1000} s</p>}
      </form>
      <ProblemNote error={error} />
      {jobs === null && !error && <p aria-busy="true">Loading jobs…</p>}
      {jobs !== null && rows.length === 0 && (
        <p data-testid="no-jobs">
          No jobs{status ? ` with status ${status}` : ""} yet. <Link href="/jobs/new">Launch one</Link>.
        </p>
      )}
      {rows.length > 0 && (
        <div class="table-scroll">
          <table class="striped jobs" data-testid="jobs-table">
            <thead>
              <tr>
                <th scope="col">Job</th>
                <th scope="col">Status</th>
                <th scope="col">Progress</th>
                <th scope="col">Cost / budget</th>
                <th scope="col">Format</th>
                <th scope="col">Created</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((job) => (
                <tr key={job.id} data-job-id={job.id}>
                  <td>
                    <Link href={`/jobs/${job.id}`} title={job.id}>
                      <code>{shortId(job.id)}</code>
                    </Link>
                  </td>
                  <td>
                    <StatusBadge status={job.status} />
                  </td>
                  <td class="progress-cell">
                    <ProgressBar percent={job.progress_percent} label={`Progress of job ${job.id}`} />
                    <small>
                      {count(job.records_done)} / {count(job.num_records)}
                    </small>
                  </td>
                  <td class="cost-cell">
                    <BudgetBar spent={job.cost_usd} limit={job.budget_usd} compact />
                    <small>
                      {usd(job.cost_usd)} / {usd(job.budget_usd)}
                    </small>
                  </td>
                  <td>{job.output_format}</td>
                  <td>{when(job.created_at)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
