import {
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  Legend,
  LinearScale,
  Tooltip,
} from "chart.js";
import { useEffect, useRef, useState } from "preact/hooks";
import { api, ok, type Schemas } from "../api/client";
import { ProblemNote } from "../components/problem";
import { count, dayRange, eachDay, usd } from "../lib/format";

Chart.register(BarController, BarElement, CategoryScale, LinearScale, Legend, Tooltip);

type Usage = Schemas["UsageView"];
type GroupBy = Usage["group_by"];

const PERIODS = [7, 30, 90] as const;
const GROUPS: { value: GroupBy; label: string }[] = [
  { value: "day", label: "Day" },
  { value: "model", label: "Model" },
  { value: "template", label: "Template" },
  { value: "kind", label: "Kind" },
];
const COLOURS = { job: "#0172ad", preview: "#e8a33d" } as const;

function keyLabel(key: string | null | undefined, groupBy: GroupBy): string {
  if (key) return groupBy === "template" ? key.slice(0, 12) : key;
  return groupBy === "model" ? "(no model detail)" : "(none)";
}

function UsageChart({ usage }: { usage: Usage }) {
  const canvas = useRef<HTMLCanvasElement>(null);
  useEffect(() => {
    const keys =
      usage.group_by === "day"
        ? eachDay(usage.first_day, usage.last_day)
        : [...new Set(usage.rows.map((r) => r.key ?? ""))];
    const series = (kind: "job" | "preview") =>
      keys.map((key) =>
        usage.rows
          .filter((r) => (r.key ?? "") === key && r.kind === kind)
          .reduce((sum, r) => sum + Number(r.cost_usd), 0),
      );
    const chart = new Chart(canvas.current!, {
      type: "bar",
      data: {
        labels: keys.map((k) => keyLabel(k, usage.group_by)),
        datasets: (["job", "preview"] as const).map((kind) => ({
          label: kind === "job" ? "Jobs" : "Previews",
          data: series(kind),
          backgroundColor: COLOURS[kind],
        })),
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        scales: {
          x: { stacked: true },
          y: { stacked: true, beginAtZero: true, ticks: { callback: (v) => usd(Number(v)) } },
        },
        plugins: {
          tooltip: { callbacks: { label: (c) => `${c.dataset.label}: ${usd(Number(c.raw))}` } },
        },
      },
    });
    return () => chart.destroy();
  }, [usage]);
  return (
    <div class="chart">
      <canvas ref={canvas} role="img" aria-label={`Spend by ${usage.group_by}, stacked by kind`} />
    </div>
  );
}

export function UsagePage() {
  const [days, setDays] = useState<(typeof PERIODS)[number]>(30);
  const [groupBy, setGroupBy] = useState<GroupBy>("day");
  const [usage, setUsage] = useState<Usage | null>(null);
  const [error, setError] = useState<unknown>(null);

  useEffect(() => {
    const range = dayRange(days);
    let current = true; // an answer to a superseded choice must not overwrite the newer one
    setError(null);
    api
      .GET("/usage", { params: { query: { from: range.from, to: range.to, group_by: groupBy } } })
      .then((r) => current && setUsage(ok(r)))
      .catch((e: unknown) => current && setError(e)); // a refusal (ok throws) shows too
    return () => {
      current = false;
    };
  }, [days, groupBy]);

  return (
    <section>
      <h1>Usage</h1>
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        <fieldset role="radiogroup" aria-label="Period">
          <legend>Period</legend>
          {PERIODS.map((value) => (
            <label key={value}>
              <input
                type="radio"
                name="days"
                checked={days === value}
                onChange={() => setDays(value)}
              />
              {value} days
            </label>
          ))}
        </fieldset>
        <label>
          Group by
          <select
            name="group_by"
            value={groupBy}
            onChange={(e) => setGroupBy(e.currentTarget.value as GroupBy)}
          >
            {GROUPS.map((g) => (
              <option key={g.value} value={g.value}>
                {g.label}
              </option>
            ))}
          </select>
        </label>
      </form>
      <ProblemNote error={error} />
      {usage && (
        <>
          <dl class="figures totals" data-testid="usage-totals">
            <div>
              <dt>Total</dt>
              <dd data-testid="usage-total">{usd(usage.total_usd)}</dd>
            </div>
            <div>
              <dt>Jobs</dt>
              <dd>{usd(usage.job_usd)}</dd>
            </div>
            <div>
              <dt>Previews</dt>
              <dd>{usd(usage.preview_usd)}</dd>
            </div>
            <div>
              <dt>Held by running previews</dt>
              <dd>{usd(usage.preview_reserved_usd)}</dd>
            </div>
          </dl>
          <p class="muted">
            {usage.first_day} to {usage.last_day} (UTC days)
          </p>
          <UsageChart usage={usage} />
          <div class="table-scroll">
            <table class="striped" data-testid="usage-table">
              <thead>
                <tr>
                  <th scope="col">{GROUPS.find((g) => g.value === usage.group_by)?.label}</th>
                  <th scope="col">Kind</th>
                  <th scope="col" class="num">Cost</th>
                  <th scope="col" class="num">Calls</th>
                  <th scope="col" class="num">Tokens in</th>
                  <th scope="col" class="num">Tokens out</th>
                  <th scope="col" class="num">Jobs / previews</th>
                </tr>
              </thead>
              <tbody>
                {usage.rows.length === 0 && (
                  <tr>
                    <td colSpan={7} class="muted">
                      Nothing spent in these days.
                    </td>
                  </tr>
                )}
                {usage.rows.map((row) => (
                  <tr key={`${row.key}-${row.kind}`}>
                    <td title={row.key ?? ""}>{keyLabel(row.key, usage.group_by)}</td>
                    <td>{row.kind}</td>
                    <td class="num">{usd(row.cost_usd)}</td>
                    <td class="num">{count(row.calls)}</td>
                    <td class="num">{count(row.input_tokens)}</td>
                    <td class="num">{count(row.output_tokens)}</td>
                    <td class="num">{count(row.items)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      )}
    </section>
  );
}
