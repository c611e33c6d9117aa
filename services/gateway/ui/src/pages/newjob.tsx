import { useEffect, useRef, useState } from "preact/hooks";
import { useLocation, useSearch } from "wouter-preact";
import {
  api,
  authFetch,
  FORMATS,
  json,
  ok,
  type OutputFormat,
  type Schemas,
  type Template,
} from "../api/client";
import { FieldNote, ProblemNote } from "../components/problem";
import { count, usd } from "../lib/format";
import { fileRecords, type Seed } from "../lib/seeds";

type Upload = Schemas["SeedUpload"];
type Preview = Schemas["PreviewView"];

const MORE_SEEDS = 9;

export function NewJobPage() {
  const search = new URLSearchParams(useSearch());
  const [, navigate] = useLocation();
  const [templates, setTemplates] = useState<Template[]>([]);
  const [templateId, setTemplateId] = useState(search.get("template") ?? "");
  const [versions, setVersions] = useState<number[]>([]);
  const [version, setVersion] = useState<number | null>(null);
  const [file, setFile] = useState<File | null>(null);
  const [seeds, setSeeds] = useState<Seed[]>([]);
  const [upload, setUpload] = useState<Upload | null>(null);
  const [records, setRecords] = useState(100);
  const [budget, setBudget] = useState("1.00");
  const [format, setFormat] = useState<OutputFormat>("jsonl");
  const [sampling, setSampling] = useState<"uniform" | "shuffle" | "stratify">("uniform");
  const [stratifyField, setStratifyField] = useState("");
  const [runSample, setRunSample] = useState(false);
  const [preview, setPreview] = useState<Preview | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState<"" | "upload" | "estimate" | "launch">("");
  const estimates = useRef(0);

  useEffect(() => {
    api
      .GET("/templates", { params: { query: { limit: 100 } } })
      .then((r) => {
        const items = ok(r).items;
        setTemplates(items);
        if (!templateId && items[0]) setTemplateId(items[0].id);
      })
      .catch(setError);
  }, []);

  useEffect(() => {
    setVersions([]);
    setVersion(null);
    setPreview(null);
    if (!templateId) return;
    // The versions of a template chosen before this one may answer after it: they must not
    // become this template's (the estimate then asked for a version it does not have: 404).
    let current = true;
    api
      .GET("/templates/{template_id}/versions", { params: { path: { template_id: templateId } } })
      .then((r) => {
        if (!current) return;
        const list = ok(r).versions.map((v) => v.version);
        setVersions(list);
        setVersion(list[0] ?? null);
      })
      .catch((e: unknown) => current && setError(e)); // a refusal (ok throws) shows too
    return () => {
      current = false;
    };
  }, [templateId]);

  async function chooseFile(chosen: File | null) {
    setFile(chosen);
    setUpload(null);
    setSeeds([]);
    setPreview(null);
    if (!chosen) return;
    setBusy("upload");
    setError(null);
    try {
      setSeeds(await fileRecords(chosen, 1 + MORE_SEEDS));
      const response = await authFetch(`/seed-data?filename=${encodeURIComponent(chosen.name)}`, {
        method: "POST",
        body: chosen,
        headers: { "Content-Type": "application/octet-stream" },
      });
      setUpload(await json<Upload>(response));
    } catch (e) {
      setError(e);
    } finally {
      setBusy("");
    }
  }

  async function estimate() {
    const [seed, ...more] = seeds;
    if (!seed || !templateId) return;
    const asked = ++estimates.current; // only the latest estimate asked for is shown
    setBusy("estimate");
    setError(null);
    try {
      const result = await api.POST("/templates/{template_id}/preview", {
        params: {
          path: { template_id: templateId },
          query: { ...(version ? { version } : {}), run: runSample },
        },
        body: { seed, more_seeds: more, num_records: records },
      });
      if (asked === estimates.current) setPreview(ok(result));
    } catch (e) {
      if (asked !== estimates.current) return;
      setError(e);
      setPreview(null);
    } finally {
      if (asked === estimates.current) setBusy("");
    }
  }

  useEffect(() => {
    if (seeds.length && templateId && !runSample && records > 0) void estimate();
  }, [seeds, templateId, version, records]);

  async function launch(event: Event) {
    event.preventDefault();
    if (!upload) return;
    setBusy("launch");
    setError(null);
    try {
      const job = ok(
        await api.POST("/jobs", {
          params: { header: { "Idempotency-Key": crypto.randomUUID() } },
          body: {
            template_id: templateId,
            template_version: version,
            seed_key: upload.key,
            num_records: records,
            // A decimal string keeps the amount exact (the API takes one; its schema says number).
            budget_usd: budget.trim() as unknown as number,
            output_format: format,
            priority: 0,
            seed_sampling: sampling === "stratify" ? { stratify: stratifyField.trim() } : sampling,
            target: "generated",
          },
        }),
      );
      navigate(`/jobs/${job.id}`);
    } catch (e) {
      setError(e);
    } finally {
      setBusy("");
    }
  }

  const estimateView = preview?.estimate;
  const worstOverBudget =
    estimateView && Number(estimateView.worst_case_usd) > Number(budget || "0");
  return (
    <section>
      <h1>New job</h1>
      <form onSubmit={launch} class="newjob" data-testid="new-job-form">
        <div class="grid">
          <label>
            Template
            <select
              name="template"
              required
              value={templateId}
              onChange={(e) => setTemplateId(e.currentTarget.value)}
              aria-describedby="template-problem"
            >
              {templates.length === 0 && <option value="">No templates yet</option>}
              {templates.map((t) => (
                <option key={t.id} value={t.id}>
                  {t.name} {t.owned ? "" : "(public)"} · {t.id.slice(0, 8)}
                </option>
              ))}
            </select>
            <FieldNote error={error} fields={["template_id"]} id="template-problem" />
          </label>
          <label>
            Version
            <select
              name="version"
              value={version ?? ""}
              onChange={(e) => setVersion(Number(e.currentTarget.value))}
            >
              {versions.map((v) => (
                <option key={v} value={v}>
                  {v}
                </option>
              ))}
            </select>
          </label>
        </div>
        <label>
          Seed file (JSON array, JSONL or CSV)
          <input
            type="file"
            name="seeds"
            accept=".json,.jsonl,.ndjson,.csv"
            required
            onChange={(e) => void chooseFile(e.currentTarget.files?.[0] ?? null)}
            aria-describedby="seed-status"
          />
          <small id="seed-status" aria-live="polite" data-testid="seed-status">
            {busy === "upload" && "Uploading…"}
            {upload && `Uploaded ${count(upload.records)} records (${upload.format}) as ${upload.key}`}
            {!upload && !busy && file === null && "Records are checked against the template before the job starts."}
          </small>
          <FieldNote error={error} fields={["seed_key", "file", "body"]} id="seed-problem" />
        </label>
        <div class="grid">
          <label>
            Records
            <input
              type="number"
              name="records"
              min={1}
              required
              value={records}
              onInput={(e) => setRecords(Number(e.currentTarget.value))}
            />
            <FieldNote error={error} fields={["num_records"]} id="records-problem" />
          </label>
          <label>
            Budget (USD)
            <input
              name="budget"
              inputMode="decimal"
              required
              pattern="[0-9]+(\.[0-9]+)?"
              value={budget}
              onInput={(e) => setBudget(e.currentTarget.value)}
            />
            <FieldNote error={error} fields={["budget_usd"]} id="budget-problem" />
          </label>
          <label>
            Format
            <select
              name="format"
              value={format}
              onChange={(e) => setFormat(e.currentTarget.value as OutputFormat)}
            >
              {FORMATS.map((f) => (
                <option key={f} value={f}>
                  {f}
                </option>
              ))}
            </select>
          </label>
        </div>
        <div class="grid">
          <label>
            Seed sampling
            <select
              name="seed-sampling"
              value={sampling}
              onChange={(e) => setSampling(e.currentTarget.value as typeof sampling)}
              aria-describedby="sampling-help"
            >
              <option value="uniform">At random (uniform)</option>
              <option value="shuffle">Every seed once per pass (shuffle)</option>
              <option value="stratify">Balanced across a field (stratify)</option>
            </select>
            <small id="sampling-help">Which seed record each record is made from.</small>
          </label>
          {sampling === "stratify" && (
            <label>
              Field to balance
              <input
                name="stratify-field"
                required
                placeholder="e.g. topic or persona.role"
                value={stratifyField}
                onInput={(e) => setStratifyField(e.currentTarget.value)}
                aria-describedby="stratify-problem"
              />
              <FieldNote error={error} fields={["seed_sampling", "seed_key"]} id="stratify-problem" />
            </label>
          )}
        </div>
        <fieldset>
          <label>
            <input
              type="checkbox"
              role="switch"
              name="run-sample"
              checked={runSample}
              onChange={(e) => setRunSample(e.currentTarget.checked)}
            />
            Run the first {Math.min(seeds.length || 1 + MORE_SEEDS, 1 + MORE_SEEDS)} seed records
            through the model for a mean and spread (billed to your preview budget)
          </label>
        </fieldset>
        <article class="estimate" data-testid="estimate" aria-live="polite">
          <header>
            <strong>Cost estimate</strong>{" "}
            <button
              type="button"
              class="secondary outline small"
              onClick={() => void estimate()}
              disabled={!seeds.length || !templateId || busy !== ""}
              aria-busy={busy === "estimate"}
            >
              {runSample ? "Run and estimate" : "Estimate"}
            </button>
          </header>
          {!estimateView && <p class="muted">Choose a template and a seed file to see what the job may cost.</p>}
          {estimateView && (
            <dl class="figures">
              <div>
                <dt>Worst case for {count(estimateView.num_records)} records</dt>
                <dd data-testid="estimate-worst">{usd(estimateView.worst_case_usd)}</dd>
              </div>
              <div>
                <dt>Worst case of one record</dt>
                <dd>{usd(preview?.worst_case_usd)}</dd>
              </div>
              {estimateView.mean_usd && (
                <div>
                  <dt>Expected (mean of {estimateView.records_run} run)</dt>
                  <dd data-testid="estimate-mean">
                    {usd(estimateView.mean_usd)} ({usd(estimateView.low_usd)}–{usd(estimateView.high_usd)})
                  </dd>
                </div>
              )}
              {Number(estimateView.spent_usd) > 0 && (
                <div>
                  <dt>The sample run cost</dt>
                  <dd>{usd(estimateView.spent_usd)}</dd>
                </div>
              )}
            </dl>
          )}
          {worstOverBudget && (
            <p class="note">
              The worst case is above the budget: the job stops when the budget is spent, with
              what it made by then.
            </p>
          )}
        </article>
        <ProblemNote error={error} />
        <button type="submit" disabled={!upload || busy !== ""} aria-busy={busy === "launch"}>
          Launch job
        </button>
      </form>
    </section>
  );
}
