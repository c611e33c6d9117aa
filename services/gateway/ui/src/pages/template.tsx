import type { EditorView } from "codemirror";
import { diffLines } from "diff";
import { useEffect, useRef, useState } from "preact/hooks";
import { Link, useLocation } from "wouter-preact";
import YAML from "yaml";
import { api, ApiProblem, authFetch, json, ok, type Schemas, type Template } from "../api/client";
import { CodeEditor, reveal, type Language } from "../components/codeeditor";
import { NotFound } from "../components/notfound";
import { ProblemNote } from "../components/problem";
import { locate, parseTemplate, type Located } from "../lib/fieldpos";
import { count, usd, when } from "../lib/format";

type Preview = Schemas["PreviewView"];
type Version = Schemas["TemplateVersionView"];

const STARTER = {
  name: "support questions",
  public: false,
  steps: [
    {
      id: "question",
      model: "amazon.nova-micro-v1:0",
      prompt: "Ask a question about {{ product }} as a {{ persona.role }}.",
      max_tokens: 200,
    },
    {
      id: "answer",
      model: "amazon.nova-micro-v1:0",
      prompt: "Answer briefly: {{ steps.question.output }}",
      max_tokens: 300,
    },
  ],
};

function editable(t: Template): Record<string, unknown> {
  const body: Record<string, unknown> = {
    name: t.name,
    public: t.public,
    steps: t.steps.map((s) => {
      const step: Record<string, unknown> = { id: s.id, model: s.model, prompt: s.prompt };
      if (s.system) step.system = s.system;
      step.max_tokens = s.max_tokens;
      step.temperature = s.temperature;
      return step;
    }),
  };
  // Variables (samplers read as {{ vars.NAME }}) go with the steps into a new version.
  if (t.variables && Object.keys(t.variables).length) body.variables = t.variables;
  return body;
}

function serialize(body: unknown, language: Language): string {
  return language === "json" ? `${JSON.stringify(body, null, 2)}\n` : YAML.stringify(body);
}

/** A seed with each field the template needs, filled with a placeholder. */
function sampleSeed(requirements: string[]): Record<string, unknown> {
  const seed: Record<string, unknown> = {};
  for (const path of requirements) {
    const parts = path.split(".");
    let node = seed;
    parts.slice(0, -1).forEach((part) => {
      if (typeof node[part] !== "object" || node[part] === null) node[part] = {};
      node = node[part] as Record<string, unknown>;
    });
    node[parts[parts.length - 1]!] = "example";
  }
  return seed;
}

function PreviewPanel({ template }: { template: Template }) {
  const [seed, setSeed] = useState(JSON.stringify(sampleSeed(template.schema_requirements), null, 2));
  const [result, setResult] = useState<Preview | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  async function run(model: boolean) {
    setBusy(true);
    setError(null);
    try {
      let parsed: unknown;
      try {
        parsed = JSON.parse(seed);
      } catch (e) {
        throw new Error(`the seed is not JSON: ${(e as Error).message}`);
      }
      const answer = await api.POST("/templates/{template_id}/preview", {
        params: { path: { template_id: template.id }, query: { version: template.version, run: model } },
        body: { seed: parsed as Record<string, unknown>, more_seeds: [], num_records: 1 },
      });
      setResult(ok(answer));
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  }

  return (
    <section aria-labelledby="preview-title" data-testid="preview-panel">
      <h2 id="preview-title">Preview one record</h2>
      <label>
        Seed record (JSON)
        <textarea rows={4} value={seed} onInput={(e) => setSeed(e.currentTarget.value)} class="mono" />
      </label>
      <div class="actions">
        <button type="button" class="secondary" onClick={() => void run(false)} disabled={busy}>
          Render prompts (free)
        </button>
        <button type="button" onClick={() => void run(true)} disabled={busy} aria-busy={busy} data-testid="preview-run">
          Run through the model (costs money)
        </button>
      </div>
      <ProblemNote error={error} />
      {result && (
        <div data-testid="preview-result">
          <p>
            Worst case of one record: <strong>{usd(result.worst_case_usd)}</strong>
            {result.cost_usd && (
              <>
                {" "}
                · it cost <strong data-testid="preview-cost">{usd(result.cost_usd)}</strong>
              </>
            )}
            {result.error && <span class="problem"> · stopped early: {result.error}</span>}
          </p>
          {result.steps.map((step) => (
            <article key={step.id} class="step">
              <header>
                <strong>{step.id}</strong> · <code>{step.model}</code> · {count(step.input_tokens)} tokens in
                {step.output_tokens !== null && step.output_tokens !== undefined && ` · ${count(step.output_tokens)} out`}
                {" · "}
                {step.cost_usd ? usd(step.cost_usd) : `worst ${usd(step.worst_case_usd)}`}
              </header>
              {step.system && (
                <>
                  <h3>System</h3>
                  <pre>{step.system}</pre>
                </>
              )}
              <h3>Prompt</h3>
              <pre>{step.prompt}</pre>
              {step.output !== null && step.output !== undefined && (
                <>
                  <h3>Output</h3>
                  <pre data-testid="preview-output">{step.output}</pre>
                </>
              )}
            </article>
          ))}
        </div>
      )}
    </section>
  );
}

function VersionsPanel({ template }: { template: Template }) {
  const [versions, setVersions] = useState<Version[]>([]);
  const [a, setA] = useState<number | null>(null);
  const [b, setB] = useState<number | null>(null);
  const [diff, setDiff] = useState<ReturnType<typeof diffLines> | null>(null);
  const [error, setError] = useState<unknown>(null);

  useEffect(() => {
    api
      .GET("/templates/{template_id}/versions", { params: { path: { template_id: template.id } } })
      .then((r) => {
        const list = ok(r).versions;
        setVersions(list);
        setB(list[0]?.version ?? null);
        setA(list[1]?.version ?? list[0]?.version ?? null);
      })
      .catch(setError);
  }, [template.id, template.version]);

  async function yamlOf(version: number): Promise<string> {
    const response = await authFetch(
      `/templates/${encodeURIComponent(template.id)}/yaml?version=${version}`,
    );
    if (!response.ok) await json(response);
    return (await response.text()).replace(/^# Plot Palette template .*\n/, "");
  }

  async function compare(event: Event) {
    event.preventDefault();
    if (a === null || b === null) return;
    setError(null);
    try {
      const [left, right] = await Promise.all([yamlOf(a), yamlOf(b)]);
      setDiff(diffLines(left, right));
    } catch (e) {
      setError(e);
    }
  }

  return (
    <section aria-labelledby="versions-title">
      <h2 id="versions-title">Versions</h2>
      <div class="table-scroll">
        <table data-testid="versions-table">
          <thead>
            <tr>
              <th scope="col">Version</th>
              <th scope="col">Name</th>
              <th scope="col">Seed fields</th>
              <th scope="col">Created</th>
            </tr>
          </thead>
          <tbody>
            {versions.map((v) => (
              <tr key={v.version}>
                <td>{v.version}</td>
                <td>{v.name}</td>
                <td>{v.schema_requirements.join(", ") || "–"}</td>
                <td>{when(v.created_at)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {versions.length > 1 ? (
        <form class="compare" onSubmit={compare}>
          <VersionSelect label="From version" name="a" versions={versions} value={a} onChange={setA} />
          <VersionSelect label="To version" name="b" versions={versions} value={b} onChange={setB} />
          <button type="submit" class="secondary">
            Compare
          </button>
        </form>
      ) : (
        <p class="muted">One version so far: save a change to compare two.</p>
      )}
      <ProblemNote error={error} />
      {diff && (
        <pre class="diff" data-testid="version-diff" aria-label={`Changes from version ${a} to ${b}`}>
          {diff.map((part, i) => (
            <span key={i} class={part.added ? "add" : part.removed ? "del" : "same"}>
              {part.value
                .replace(/\n$/, "")
                .split("\n")
                .map((line) => `${part.added ? "+ " : part.removed ? "- " : "  "}${line}\n`)
                .join("")}
            </span>
          ))}
        </pre>
      )}
    </section>
  );
}

export function TemplatePage({ id }: { id: string | null }) {
  const [template, setTemplate] = useState<Template | null>(null);
  const [missing, setMissing] = useState(false);
  const [language, setLanguage] = useState<Language>("json");
  const [text, setText] = useState(id ? "" : serialize(STARTER, "json"));
  const [problems, setProblems] = useState<Located[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [note, setNote] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const editor = useRef<EditorView | null>(null);
  const [, navigate] = useLocation();

  useEffect(() => {
    if (id && template?.id === id) return; // the template just created: shown already
    setMissing(false);
    setProblems([]);
    setNote(null);
    if (!id) {
      setTemplate(null);
      setText(serialize(STARTER, language));
      return;
    }
    api
      .GET("/templates/{template_id}", { params: { path: { template_id: id } } })
      .then((r) => {
        if (r.response.status === 404) {
          setMissing(true);
          return;
        }
        const loaded = ok(r);
        setTemplate(loaded);
        setText(serialize(editable(loaded), language));
      })
      .catch(setError);
  }, [id]);

  function switchTo(next: Language) {
    if (next === language) return;
    const parsed = parseTemplate(text);
    if ("body" in parsed) setText(serialize(parsed.body, next));
    setLanguage(next);
    setProblems([]);
  }

  async function save(event: Event) {
    event.preventDefault();
    setError(null);
    setNote(null);
    setProblems([]);
    const parsed = parseTemplate(text);
    if ("problem" in parsed) {
      setProblems(locate(text, [parsed.problem]));
      return;
    }
    setBusy(true);
    try {
      let saved: Template;
      if (id && template) {
        saved = ok(
          await api.PUT("/templates/{template_id}", {
            params: { path: { template_id: id } },
            body: parsed.body as never,
          }),
        );
      } else if (language === "yaml") {
        saved = await json<Template>(
          await authFetch("/templates/yaml", {
            method: "POST",
            headers: { "Content-Type": "application/yaml" },
            body: text,
          }),
        );
      } else {
        saved = ok(await api.POST("/templates", { body: parsed.body as never }));
      }
      setTemplate(saved);
      setNote(`Saved version ${saved.version}.`);
      if (!id) navigate(`/templates/${saved.id}`, { replace: true });
    } catch (e) {
      setError(e);
      if (e instanceof ApiProblem && e.problem.errors.length) setProblems(locate(text, e.problem.errors));
    } finally {
      setBusy(false);
    }
  }

  async function fork() {
    if (!template) return;
    setError(null);
    try {
      const copy = ok(
        await api.POST("/templates/{template_id}/fork", {
          params: { path: { template_id: template.id }, query: { version: template.version } },
          body: { name: `${template.name} (fork)` },
        }),
      );
      navigate(`/templates/${copy.id}`);
    } catch (e) {
      setError(e);
    }
  }

  if (missing) return <NotFound what="template" />;
  const readOnly = template !== null && !template.owned;
  return (
    <section class="template">
      <div class="heading">
        <h1>{template ? template.name : "New template"}</h1>
        {template && (
          <span class="muted">
            version {template.version} · {template.owned ? "yours" : "public"}
            {template.public && template.owned ? ", public" : ""}
            {template.forked_from && ` · forked from ${template.forked_from.slice(0, 8)}`}
          </span>
        )}
        {template && (
          <div class="actions">
            <Link href={`/jobs/new?template=${template.id}`} role="button" class="outline">
              New job from it
            </Link>
            <button type="button" class="secondary outline" onClick={() => void fork()} data-testid="fork">
              Fork
            </button>
          </div>
        )}
      </div>
      <form onSubmit={save} aria-labelledby="editor-title">
        <div class="editor-bar">
          <h2 id="editor-title">{readOnly ? "Steps (fork it to edit)" : "Edit"}</h2>
          <fieldset role="radiogroup" aria-label="Format" class="formats">
            {(["json", "yaml"] as const).map((value) => (
              <label key={value}>
                <input
                  type="radio"
                  name="format"
                  value={value}
                  checked={language === value}
                  onChange={() => switchTo(value)}
                />
                {value.toUpperCase()}
              </label>
            ))}
          </fieldset>
        </div>
        <CodeEditor
          value={text}
          language={language}
          problems={problems}
          label={`Template as ${language.toUpperCase()}`}
          onChange={(value) => setText(value)}
          onView={(view) => (editor.current = view)}
        />
        {problems.length > 0 && (
          <ul class="field-problems" data-testid="field-problems" aria-label="Problems">
            {problems.map((p) => (
              <li key={`${p.field}-${p.from}`}>
                <button type="button" class="link" onClick={() => reveal(editor.current, p)}>
                  line {p.line}
                </button>{" "}
                <code data-testid="problem-field">{p.field}</code>: {p.problem}
              </li>
            ))}
          </ul>
        )}
        <ProblemNote error={problems.length ? null : error} />
        {note && (
          <p class="note" role="status" data-testid="template-note">
            {note}
          </p>
        )}
        {!readOnly && (
          <button type="submit" aria-busy={busy} disabled={busy} data-testid="save-template">
            {template ? "Save as a new version" : "Create template"}
          </button>
        )}
      </form>
      {template && <PreviewPanel template={template} key={`${template.id}:${template.version}`} />}
      {template && <VersionsPanel template={template} />}
    </section>
  );
}

/** A labelled select of a template's versions (one side of the diff). */
function VersionSelect(props: {
  label: string;
  name: string;
  versions: { version: number }[];
  value: number | null | undefined;
  onChange: (version: number) => void;
}) {
  return (
    <label>
      {props.label}
      <select
        name={props.name}
        value={props.value ?? ""}
        onChange={(e) => props.onChange(Number(e.currentTarget.value))}
      >
        {props.versions.map((v) => (
          <option key={v.version} value={v.version}>
            {v.version}
          </option>
        ))}
      </select>
    </label>
  );
}
