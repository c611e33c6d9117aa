import { ApiProblem } from "../api/client";

/** An error of the API (its problem details) or of the page, shown where it happened. */
export function ProblemNote({ error, testid }: { error: unknown; testid?: string }) {
  if (!error) return null;
  const problem = error instanceof ApiProblem ? error.problem : null;
  const text = error instanceof Error ? error.message : String(error);
  return (
    <div class="problem" role="alert" data-testid={testid ?? "problem"}>
      <strong>{problem ? `${problem.status} ${problem.title}` : "Error"}:</strong> {text}
      {problem && problem.errors.length > 1 && (
        <ul>
          {problem.errors.map((e) => (
            <li key={`${e.field}-${e.problem}`}>
              <code>{e.field}</code>: {e.problem}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

/** Whether a problem's field is one of `fields` or inside one ("events[2]" is in "events"). */
function names(field: string, fields: readonly string[]): boolean {
  return fields.some((f) => field === f || field.startsWith(`${f}[`) || field.startsWith(`${f}.`));
}

/** The problem of a field, when the last API answer named it. */
export function fieldProblem(error: unknown, ...fields: string[]): string | null {
  if (!(error instanceof ApiProblem)) return null;
  const hit = error.problem.errors.find((e) => names(e.field, fields));
  return hit ? hit.problem : null;
}

/** The API's problem with a form field, shown under the field (its id for aria-describedby). */
export function FieldNote({ error, fields, id }: { error: unknown; fields: string[]; id: string }) {
  const text = fieldProblem(error, ...fields);
  return text ? (
    <small id={id} class="field-problem" role="alert" data-testid={id}>
      {text}
    </small>
  ) : null;
}
