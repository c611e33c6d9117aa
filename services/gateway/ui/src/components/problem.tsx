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
