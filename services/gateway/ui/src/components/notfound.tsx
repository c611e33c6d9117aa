import { Link } from "wouter-preact";

export function NotFound({ what, detail }: { what: string; detail?: string }) {
  return (
    <section class="notfound" data-testid="not-found">
      <h1>404: {what} not found</h1>
      <p>{detail ?? `There is no such ${what}, or it is not yours.`}</p>
      <p>
        <Link href="/jobs">Back to your jobs</Link>
      </p>
    </section>
  );
}
