import { useEffect, useRef, useState } from "preact/hooks";
import { Link, useLocation } from "wouter-preact";
import {
  api,
  FINAL,
  FORMATS,
  ok,
  type Dashboard,
  type Job,
  type OutputFormat,
  type Schemas,
} from "../api/client";
import { BudgetBar, ProgressBar } from "../components/bars";
import { ConfirmDialog } from "../components/confirm";
import { NotFound } from "../components/notfound";
import { ProblemNote } from "../components/problem";
import { StatusBadge } from "../components/status";
import { followJob } from "../lib/events";
import { count, duration, rate, usd, when } from "../lib/format";

type Sample = Schemas["RecordSample"];
type CostLine = Schemas["CostLine"];
type QuotaLine = Schemas["QuotaLine"];

const SAMPLE_SIZE = 10;
const SAMPLE_EVERY_MS = 1500;
const SETTLE_EVERY_MS = 1000;

/** Call attempts throttled and retried (the dashboard's ``tokens.throttled`` and ``tokens.retried``). */
interface CallCounts {
  throttled_calls?: number | null;
  retried_calls?: number | null;
}

function callCounts(dash: object | null): CallCounts {
  const tokens = ((dash ?? {}) as { tokens?: { throttled?: unknown; retried?: unknown } }).tokens;
  const out: CallCounts = {};
  if (typeof tokens?.throttled === "number") out.throttled_calls = tokens.throttled;
  if (typeof tokens?.retried === "number") out.retried_calls = tokens.retried;
  return out;
}

function CostTable({ title, lines, testid }: { title: string; lines: CostLine[]; testid: string }) {
  return (
    <div class="table-scroll">
      <table class="costs" data-testid={testid}>
        <caption>{title}</caption>
        <thead>
          <tr>
            <th scope="col">{title.includes("step") ? "Step" : "Model"}</th>
            {title.includes("step") && <th scope="col">Model</th>}
            <th scope="col" class="num">Cost</th>
            <th scope="col" class="num">Calls</th>
            <th scope="col" class="num">Tokens in</th>
            <th scope="col" class="num">Tokens out</th>
          </tr>
        </thead>
        <tbody>
          {lines.length === 0 && (
            <tr>
              <td colSpan={6} class="muted">
                Nothing spent yet.
              </td>
            </tr>
          )}
          {lines.map((line) => (
            <tr key={line.name}>
              <th scope="row">
                <code>{line.name}</code>
              </th>
              {title.includes("step") && (
                <td>
                  <code>{line.model ?? "–"}</code>
                </td>
              )}
              <td class="num">{usd(line.cost_usd)}</td>
              <td class="num">{count(line.calls)}</td>
              <td class="num">{count(line.input_tokens)}</td>
              <td class="num">{count(line.output_tokens)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** Tokens per minute, or what a null means in that column. */
function tpm(value: number | null | undefined, none: string) {
  return value === null || value === undefined ? <span class="muted">{none}</span> : count(Math.round(value));
}

/** The dashboard's ``quotas``: each model's quota as the generators share it now. */
function QuotaTable({ lines }: { lines: QuotaLine[] }) {
  return (
    <div class="table-scroll">
      <table class="costs" data-testid="quotas">
        <caption>Model quotas (tokens a minute)</caption>
        <thead>
          <tr>
            <th scope="col">Model</th>
            <th scope="col" class="num">Generators</th>
            <th scope="col" class="num">Quota</th>
            <th scope="col" class="num">Share in use</th>
            <th scope="col" class="num">Rate now</th>
            <th scope="col" class="num">Used</th>
            <th scope="col" class="num">Calls waiting</th>
          </tr>
        </thead>
        <tbody>
          {lines.length === 0 && (
            <tr>
              <td colSpan={7} class="muted">
                No generator is calling a model of this job now.
              </td>
            </tr>
          )}
          {lines.map((line) => (
            <tr key={line.model} data-model={line.model}>
              <th scope="row">
                <code>{line.model}</code>
              </th>
              <td class="num">{count(line.generators)}</td>
              <td class="num">{tpm(line.quota_tpm, "not listed")}</td>
              <td class="num">{tpm(line.share_tpm, "–")}</td>
              <td class="num">{tpm(line.rate_tpm, "unlimited")}</td>
              <td class="num">{count(Math.round(line.used_tpm))}</td>
              <td class="num">{count(line.waiting)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function Records({ sample }: { sample: Sample | null }) {
  if (!sample) return <p aria-busy="true">Loading records…</p>;
  return (
    <div class="table-scroll">
      <table class="records" data-testid="records-table">
        <caption>
          Sample records ({sample.items.length}
          {sample.items.length ? `, the first written` : ""}): each step's output as parts land
        </caption>
        <thead>
          <tr>
            <th scope="col">#</th>
            <th scope="col">Seed</th>
            {sample.steps.map((step) => (
              <th scope="col" key={step}>
                {step}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {sample.items.length === 0 && (
            <tr>
              <td colSpan={2 + sample.steps.length} class="muted" data-testid="records-empty">
                No records written yet: they appear here as the first parts land.
              </td>
            </tr>
          )}
          {sample.items.map((record) => (
            <tr key={record.id} data-testid="record-row" data-complete={String(record.complete)}>
              <th scope="row">
                {record.index}
                {!record.complete && <small class="muted"> (incomplete)</small>}
              </th>
              <td>{record.seed_index}</td>
              {sample.steps.map((step) => {
                const text = record.outputs[step];
                return (
                  <td key={step} class="output" data-step={step}>
                    {text === null || text === undefined ? (
                      <span class="muted">–</span>
                    ) : (
                      <div class="cell-text" tabIndex={0}>
                        {text}
                      </div>
                    )}
                  </td>
                );
              })}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function JobPage({ id }: { id: string }) {
  const [job, setJob] = useState<Job | null>(null);
  const [dash, setDash] = useState<Dashboard | null>(null);
  const [sample, setSample] = useState<Sample | null>(null);
  const [missing, setMissing] = useState(false);
  const [deleted, setDeleted] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [note, setNote] = useState<string | null>(null);
  const [connected, setConnected] = useState(false);
  const [busy, setBusy] = useState("");
  const confirmRef = useRef<HTMLDialogElement>(null);
  const sampleAt = useRef(0);
  const sampleTimer = useRef<ReturnType<typeof setTimeout>>();
  const [, navigate] = useLocation();

  const path = { params: { path: { job_id: id } } };

  async function loadJob(): Promise<Job | null> {
    const result = await api.GET("/jobs/{job_id}", path);
    if (result.response.status === 404) {
      setMissing(true);
      return null;
    }
    const value = ok(result);
    setJob(value);
    return value;
  }

  async function loadSample() {
    sampleAt.current = Date.now();
    const result = await api.GET("/jobs/{job_id}/records", {
      params: { path: { job_id: id }, query: { limit: SAMPLE_SIZE } },
    });
    if (result.response.ok) setSample(ok(result));
  }

  /** Read the sample again, at most every SAMPLE_EVERY_MS while parts land. */
  function refreshSample() {
    const wait = sampleAt.current + SAMPLE_EVERY_MS - Date.now();
    clearTimeout(sampleTimer.current);
    if (wait <= 0) void loadSample();
    else sampleTimer.current = setTimeout(() => void loadSample(), wait);
  }

  // A finished job still writing its export changes once more (its export and ETag):
  // read it again until it has settled, so that delete sends the ETag it will have.
  const unsettled = job !== null && FINAL.has(job.status) && !job.settled;
  useEffect(() => {
    if (!unsettled) return;
    const timer = setTimeout(() => void loadJob().catch(setError), SETTLE_EVERY_MS);
    return () => clearTimeout(timer);
  }, [job, unsettled]);

  useEffect(() => {
    let lastDone = -1;
    let lastStatus = "";
    setJob(null);
    setDash(null);
    setSample(null);
    setMissing(false);
    setDeleted(false);
    let stop = () => {};
    loadJob()
      .then((found) => {
        if (!found) return;
        void loadSample();
        stop = followJob(id, {
          progress(next) {
            setDash(next);
            if (next.progress.done !== lastDone) {
              lastDone = next.progress.done;
              refreshSample();
            }
            if (next.status !== lastStatus) {
              lastStatus = next.status;
              void loadJob(); // its ETag changes with its status
            }
          },
          end(final) {
            if (final.status === "DELETED") {
              setDeleted(true);
              return;
            }
            setJob(final as Job);
            void api.GET("/jobs/{job_id}/dashboard", path).then((r) => r.response.ok && setDash(ok(r)));
            void loadSample();
          },
          problem(problem) {
            if (problem.status === 404) setMissing(true);
            else setError(problem);
          },
          connected: setConnected,
        });
      })
      .catch(setError);
    return () => {
      stop();
      clearTimeout(sampleTimer.current);
    };
  }, [id]);

  async function cancel() {
    if (!job) return;
    setBusy("cancel");
    setError(null);
    setNote(null);
    try {
      // DELETE with the ETag read: it cancels the job only while it is still as shown (412
      // when it has finished meanwhile, and then nothing is deleted).
      const result = await api.DELETE("/jobs/{job_id}", {
        params: { path: { job_id: id }, header: { "If-Match": job.etag } },
      });
      if (result.response.status === 412) {
        setNote("The job changed before the cancel arrived (it may have finished): nothing was done.");
        await loadJob();
        return;
      }
      ok(result);
      setNote("Cancel requested: the job stops shortly and exports what it made.");
    } catch (e) {
      setError(e);
    } finally {
      setBusy("");
    }
  }

  async function remove() {
    if (!job) return;
    confirmRef.current?.close();
    setBusy("delete");
    setError(null);
    try {
      const result = await api.DELETE("/jobs/{job_id}", {
        params: { path: { job_id: id }, header: { "If-Match": job.etag } },
      });
      if (result.response.status === 412) {
        setNote("The job changed since it was shown: nothing was deleted. Look again and retry.");
        await loadJob();
        return;
      }
      ok(result);
      navigate("/jobs");
    } catch (e) {
      setError(e);
    } finally {
      setBusy("");
    }
  }

  async function download(format: OutputFormat, file: "dataset" | "rejected" = "dataset") {
    setBusy(`download-${file === "rejected" ? "rejected" : format}`);
    setError(null);
    try {
      const link = ok(
        await api.GET("/jobs/{job_id}/download", {
          params: { path: { job_id: id }, query: file === "rejected" ? { file } : { format } },
        }),
      );
      const what = file === "rejected" ? "Rejected records" : `${link.partial ? "Partial" : "Full"} ${link.format}`;
      setNote(
        `${what} download: ${count(link.bytes)} bytes` +
          (link.records !== null && link.records !== undefined ? `, ${count(link.records)} records` : ""),
      );
      const anchor = document.createElement("a");
      anchor.href = link.url;
      anchor.rel = "noopener";
      anchor.download = "";
      document.body.append(anchor);
      anchor.click();
      anchor.remove();
    } catch (e) {
      setError(e);
    } finally {
      setBusy("");
    }
  }

  if (missing) return <NotFound what="job" detail={`There is no job ${id}, or it is not yours.`} />;
  if (deleted)
    return (
      <section>
        <h1>Job deleted</h1>
        <p>
          The job {id} was deleted. <Link href="/jobs">Back to your jobs</Link>
        </p>
      </section>
    );
  if (!job) {
    return (
      <section>
        <ProblemNote error={error} />
        {!error && <p aria-busy="true">Loading job…</p>}
      </section>
    );
  }

  const status = dash?.status ?? job.status;
  const final = FINAL.has(status);
  const progress = dash?.progress;
  const budget = dash?.budget;
  const calls = callCounts(dash);
  const hasData = (progress?.done ?? job.records_done) > 0 || job.export !== null;
  return (
    <section class="job" data-testid="job-page" data-status={status}>
      <div class="heading">
        <h1>
          Job <code title={job.id}>{job.id.slice(0, 12)}</code>
        </h1>
        <StatusBadge status={status} />
        {!final && (
          <span class={`stream ${connected ? "on" : "off"}`} aria-live="polite">
            {connected ? "live" : "reconnecting…"}
          </span>
        )}
      </div>
      <p class="muted">
        Template{" "}
        {job.template_id ? (
          <Link href={`/templates/${job.template_id}`}>
            <code>{job.template_id.slice(0, 8)}</code> v{job.template_version}
          </Link>
        ) : (
          "–"
        )}{" "}
        · {job.output_format} · created {when(job.created_at)}
        {job.finished_at && ` · finished ${when(job.finished_at)}`}
      </p>
      {job.error && (
        <p class="problem" role="status">
          {job.error}
        </p>
      )}
      {job.short_of_target && (
        <p class="problem" role="status" data-testid="short-of-target">
          Short of target: {job.records_kept ?? 0} of {job.num_records} records kept.{" "}
          {job.short_of_target_reason ?? ""}
        </p>
      )}
      <div class="actions" role="group" aria-label="Job actions">
        {!final && (
          <button
            type="button"
            class="secondary"
            data-testid="cancel"
            onClick={() => void cancel()}
            aria-busy={busy === "cancel"}
            disabled={busy !== ""}
          >
            Cancel job
          </button>
        )}
        {FORMATS.map((format) => (
          <button
            type="button"
            class="outline"
            key={format}
            data-testid={`download-${format}`}
            onClick={() => void download(format)}
            disabled={!hasData || busy !== ""}
            aria-busy={busy === `download-${format}`}
          >
            {final ? "Download" : "Partial download"} {format}
          </button>
        ))}
        {job.export && job.export.rejected > 0 && (
          <button
            type="button"
            class="outline secondary"
            data-testid="download-rejected"
            onClick={() => void download("jsonl", "rejected")}
            disabled={busy !== ""}
            aria-busy={busy === "download-rejected"}
            title={Object.entries(job.export.rejected_reasons ?? {})
              .map(([reason, n]) => `${reason}: ${n}`)
              .join(", ")}
          >
            Rejected records ({count(job.export.rejected)})
          </button>
        )}
        {final && !job.settled && (
          <span aria-busy="true" data-testid="exporting">
            Writing the dataset…
          </span>
        )}
        {final && job.settled && (
          <button
            type="button"
            class="contrast outline"
            data-testid="delete"
            onClick={() => confirmRef.current?.showModal()}
            disabled={busy !== ""}
          >
            Delete job
          </button>
        )}
      </div>
      {note && (
        <p class="note" role="status" data-testid="job-note">
          {note}
        </p>
      )}
      <ProblemNote error={error} />
      <div class="panels">
        <article aria-labelledby="progress-title">
          <h2 id="progress-title">Progress</h2>
          <ProgressBar percent={progress?.percent ?? job.progress_percent} label="Records complete" />
          <dl class="figures">
            <div>
              <dt>Complete</dt>
              <dd data-testid="records-done">
                {count(progress?.done ?? job.records_done)} / {count(job.num_records)}
              </dd>
            </div>
            <div>
              <dt>Incomplete</dt>
              <dd>{count(progress?.incomplete ?? job.records_incomplete)}</dd>
            </div>
            {(progress?.partitions_paused ?? job.partitions_paused) > 0 && (
              <div data-testid="paused">
                <dt>Paused partitions</dt>
                <dd>
                  {count(progress?.partitions_paused ?? job.partitions_paused)}{" "}
                  <small class="muted">{progress?.paused_reason ?? job.paused_reason ?? ""}</small>
                </dd>
              </div>
            )}
            {job.export && job.export.rejected > 0 && (
              <div>
                <dt>Rejected (keep_if, dedup)</dt>
                <dd data-testid="records-rejected">
                  {count(job.export.rejected)}{" "}
                  <small class="muted">
                    {Object.entries(job.export.rejected_reasons ?? {})
                      .map(([reason, n]) => `${reason} ${count(n)}`)
                      .join(" · ")}
                  </small>
                </dd>
              </div>
            )}
            <div>
              <dt>Rate</dt>
              <dd>{rate(progress?.records_per_second)}</dd>
            </div>
            <div>
              <dt>ETA</dt>
              <dd data-testid="eta">{final ? "done" : duration(dash?.timing.eta_seconds)}</dd>
            </div>
            <div>
              <dt>Elapsed</dt>
              <dd>{duration(dash?.timing.elapsed_seconds)}</dd>
            </div>
            <div>
              <dt>Partitions</dt>
              <dd>
                {progress?.partitions_in_flight ?? job.partitions_in_flight} running of{" "}
                {count(progress?.partitions_total ?? job.partitions_total)}
              </dd>
            </div>
          </dl>
        </article>
        <article aria-labelledby="budget-title">
          <h2 id="budget-title">Cost</h2>
          <BudgetBar
            spent={budget?.spent_usd ?? job.cost_usd}
            reserved={budget?.reserved_usd ?? job.reserved_usd}
            limit={budget?.limit_usd ?? job.budget_usd}
          />
          <dl class="figures">
            <div>
              <dt>Calls</dt>
              <dd>{count(dash?.tokens.calls)}</dd>
            </div>
            <div>
              <dt>Tokens in / out</dt>
              <dd>
                {count(dash?.tokens.input)} / {count(dash?.tokens.output)}
              </dd>
            </div>
            {dash && dash.progress.kept != null && (job.target === "kept" || Object.keys(dash.progress.rejected ?? {}).length) ? (
              <div data-testid="kept">
                <dt>Generated / kept</dt>
                <dd>
                  {count(dash.progress.generated)} / {count(dash.progress.kept)}
                  {Object.entries(dash.progress.rejected ?? {}).map(([reason, n]) => (
                    <span class="muted" key={reason}>
                      {" "}
                      · {reason} {count(n)}
                    </span>
                  ))}
                </dd>
              </div>
            ) : null}
            {dash?.tokens.cache_read || dash?.tokens.cache_write ? (
              <div data-testid="cache-tokens">
                <dt>Prompt cache read / written</dt>
                <dd>
                  {count(dash.tokens.cache_read)} / {count(dash.tokens.cache_write)}
                </dd>
              </div>
            ) : null}
            <div data-testid="throttled">
              <dt>Throttled calls</dt>
              <dd>{calls.throttled_calls ?? <span class="muted">not reported</span>}</dd>
            </div>
            <div data-testid="retried">
              <dt>Retried calls</dt>
              <dd>{calls.retried_calls ?? <span class="muted">not reported</span>}</dd>
            </div>
            <div data-testid="quota-wait">
              <dt>Waited for quota</dt>
              <dd>{duration(dash?.tokens.quota_wait_seconds)}</dd>
            </div>
          </dl>
        </article>
      </div>
      <div class="panels wide">
        <CostTable title="Cost by model" lines={dash?.cost_by_model ?? []} testid="cost-by-model" />
        <CostTable title="Cost by step" lines={dash?.cost_by_step ?? []} testid="cost-by-step" />
      </div>
      {!final && (
        <div class="panels wide">
          <QuotaTable lines={dash?.quotas ?? []} />
        </div>
      )}
      <h2>Records</h2>
      <Records sample={sample} />
      <ConfirmDialog
        dialog={confirmRef}
        title="Delete this job?"
        keep="Keep it"
        yes="Delete"
        onYes={() => void remove()}
      >
        <p>
          Job <code>{job.id}</code>, its records, its dataset files and its ledger are deleted for
          good. Its spend leaves your usage.
        </p>
      </ConfirmDialog>
    </section>
  );
}

