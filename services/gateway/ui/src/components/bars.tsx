import { budgetLevel, percentOf, usd } from "../lib/format";

/** Cost against budget: spent (yellow at 75 %, orange at 90 %) and reserved beside it. */
export function BudgetBar({
  spent,
  reserved,
  limit,
  compact = false,
}: {
  spent: string;
  reserved?: string;
  limit: string;
  compact?: boolean;
}) {
  const spentPct = percentOf(spent, limit);
  const reservedPct = reserved ? Math.min(percentOf(reserved, limit), 100 - spentPct) : 0;
  const level = budgetLevel(spentPct);
  const label = `${usd(spent)} of ${usd(limit)} budget spent (${spentPct.toFixed(1)} %)`;
  return (
    <div class={`budget ${compact ? "compact" : ""}`} data-testid="budget-bar" data-level={level}>
      <div
        class="track"
        role="meter"
        aria-label="Cost against budget"
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={Number(spentPct.toFixed(1))}
        aria-valuetext={label}
      >
        <div class={`fill ${level}`} style={{ width: `${spentPct}%` }} />
        {reservedPct > 0 && (
          <div class="reserved" style={{ left: `${spentPct}%`, width: `${reservedPct}%` }} />
        )}
      </div>
      {!compact && (
        <p class="caption">
          <span data-testid="budget-text">{label}</span>
          {reserved && Number(reserved) > 0 && <span> · {usd(reserved)} reserved</span>}
        </p>
      )}
    </div>
  );
}

export function ProgressBar({ percent, label }: { percent: number; label: string }) {
  return (
    <progress value={percent} max={100} aria-label={label} title={`${percent.toFixed(1)} %`} />
  );
}
