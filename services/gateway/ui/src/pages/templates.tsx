import { useEffect, useState } from "preact/hooks";
import { Link } from "wouter-preact";
import { api, ok, type Template } from "../api/client";
import { ProblemNote } from "../components/problem";
import { when } from "../lib/format";

export function TemplatesPage() {
  const [items, setItems] = useState<Template[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [show, setShow] = useState<"all" | "own" | "public">("all");

  useEffect(() => {
    api
      .GET("/templates", { params: { query: { limit: 100 } } })
      .then((r) => setItems(ok(r).items), setError);
  }, []);

  const rows = (items ?? []).filter(
    (t) => show === "all" || (show === "own" ? t.owned : !t.owned),
  );
  return (
    <section>
      <div class="heading">
        <h1>Templates</h1>
        <Link href="/templates/new" role="button" data-testid="new-template">
          New template
        </Link>
      </div>
      <fieldset class="filters" role="radiogroup" aria-label="Which templates">
        {(["all", "own", "public"] as const).map((value) => (
          <label key={value}>
            <input
              type="radio"
              name="show"
              value={value}
              checked={show === value}
              onChange={() => setShow(value)}
            />
            {value === "all" ? "All" : value === "own" ? "Yours" : "Public (others')"}
          </label>
        ))}
      </fieldset>
      <ProblemNote error={error} />
      {items === null && !error && <p aria-busy="true">Loading templates…</p>}
      {items !== null && rows.length === 0 && <p>No templates here yet.</p>}
      {rows.length > 0 && (
        <div class="table-scroll">
          <table class="striped" data-testid="templates-table">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Version</th>
                <th scope="col">Steps</th>
                <th scope="col">Seed fields</th>
                <th scope="col">Whose</th>
                <th scope="col">Created</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((t) => (
                <tr key={t.id}>
                  <td>
                    <Link href={`/templates/${t.id}`}>{t.name}</Link>
                  </td>
                  <td>{t.version}</td>
                  <td>{t.steps.map((s) => s.id).join(" → ")}</td>
                  <td>{t.schema_requirements.join(", ") || "–"}</td>
                  <td>{t.owned ? (t.public ? "yours, public" : "yours") : "public"}</td>
                  <td>{when(t.created_at)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
