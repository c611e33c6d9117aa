import { useEffect, useRef, useState } from "preact/hooks";
import { Link } from "wouter-preact";
import {
  api,
  ok,
  WEBHOOK_EVENTS,
  type Schemas,
  type Webhook,
  type WebhookEvent,
} from "../api/client";
import { FieldNote, fieldProblem, ProblemNote } from "../components/problem";
import { when } from "../lib/format";

type Created = Schemas["WebhookCreated"];

const ALL_EVENTS = Object.keys(WEBHOOK_EVENTS) as WebhookEvent[];

/** The signing secret of the webhook just created: shown this once. */
function SecretOnce({ created, onDone }: { created: Created; onDone: () => void }) {
  const heading = useRef<HTMLHeadingElement>(null);
  const [copied, setCopied] = useState(false);
  useEffect(() => heading.current?.focus(), [created.id]);

  async function copy() {
    try {
      await navigator.clipboard.writeText(created.secret);
      setCopied(true);
    } catch {
      setCopied(false); // no clipboard here: the secret stays shown to be selected by hand
    }
  }

  return (
    <article class="secret" data-testid="webhook-secret" aria-labelledby="secret-title">
      <h2 id="secret-title" ref={heading} tabIndex={-1}>
        Webhook created: its signing secret
      </h2>
      <p>
        Deliveries to <code>{created.url}</code> are signed as the Standard Webhooks specification
        says; verify them with this secret:
      </p>
      <pre data-testid="secret-value">{created.secret}</pre>
      <p class="note" role="status">
        This is the only time the secret is shown: it is not shown again. Store it where your
        receiver reads it now; if it is lost, delete the webhook and create another.
      </p>
      <div class="actions">
        <button type="button" class="secondary" onClick={() => void copy()}>
          {copied ? "Copied" : "Copy secret"}
        </button>
        <Link href={`/webhooks/${created.id}`} role="button" class="outline">
          Open the webhook
        </Link>
        <button type="button" class="secondary outline" onClick={onDone}>
          I have stored it
        </button>
      </div>
    </article>
  );
}

function CreateForm({ onCreated }: { onCreated: (created: Created) => void }) {
  const [url, setUrl] = useState("");
  const [events, setEvents] = useState<Set<WebhookEvent>>(new Set(ALL_EVENTS));
  const [description, setDescription] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  function toggle(event: WebhookEvent, on: boolean) {
    const next = new Set(events);
    if (on) next.add(event);
    else next.delete(event);
    setEvents(next);
  }

  async function create(submitted: Event) {
    submitted.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const created = ok(
        await api.POST("/webhooks", {
          body: {
            url: url.trim(),
            events: ALL_EVENTS.filter((e) => events.has(e)),
            description: description.trim() || null,
          },
        }),
      );
      setUrl("");
      setDescription("");
      setEvents(new Set(ALL_EVENTS));
      onCreated(created);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  }

  const urlProblem = fieldProblem(error, "url");
  const eventsProblem = fieldProblem(error, "events");
  return (
    <form onSubmit={create} noValidate data-testid="new-webhook-form" aria-labelledby="new-webhook-title">
      <h2 id="new-webhook-title">New webhook</h2>
      <label>
        URL
        <input
          type="url"
          name="url"
          inputMode="url"
          autoComplete="off"
          placeholder="https://example.com/hooks/plot-palette"
          value={url}
          onInput={(e) => setUrl(e.currentTarget.value)}
          aria-invalid={urlProblem ? true : undefined}
          aria-describedby="url-help url-problem"
        />
        <small id="url-help">
          An https URL whose host has public addresses only; redirects are not followed.
        </small>
        <FieldNote error={error} fields={["url"]} id="url-problem" />
      </label>
      <fieldset class="events" aria-describedby="events-problem" aria-invalid={eventsProblem ? true : undefined}>
        <legend>Events</legend>
        {ALL_EVENTS.map((event) => (
          <label key={event}>
            <input
              type="checkbox"
              name="events"
              value={event}
              checked={events.has(event)}
              onChange={(e) => toggle(event, e.currentTarget.checked)}
            />
            <code>{event}</code> <span class="muted">{WEBHOOK_EVENTS[event]}</span>
          </label>
        ))}
        <FieldNote error={error} fields={["events"]} id="events-problem" />
      </fieldset>
      <label>
        Description (optional)
        <input
          name="description"
          maxLength={200}
          value={description}
          onInput={(e) => setDescription(e.currentTarget.value)}
          aria-describedby="description-problem"
        />
        <FieldNote error={error} fields={["description"]} id="description-problem" />
      </label>
      <ProblemNote error={error} />
      <button type="submit" aria-busy={busy} disabled={busy} data-testid="create-webhook">
        Create webhook
      </button>
    </form>
  );
}

export function WebhooksPage() {
  const [items, setItems] = useState<Webhook[] | null>(null);
  const [created, setCreated] = useState<Created | null>(null);
  const [error, setError] = useState<unknown>(null);

  async function load() {
    try {
      setItems(ok(await api.GET("/webhooks")).items);
      setError(null);
    } catch (e) {
      setError(e);
    }
  }

  useEffect(() => void load(), []);

  return (
    <section class="webhooks">
      <div class="heading">
        <h1>Webhooks</h1>
        <span class="muted">Your job events, POSTed to your endpoints as they happen</span>
      </div>
      {created && <SecretOnce created={created} onDone={() => setCreated(null)} />}
      <ProblemNote error={error} />
      {items === null && !error && <p aria-busy="true">Loading webhooks…</p>}
      {items !== null && items.length === 0 && <p data-testid="no-webhooks">No webhooks yet: add one below.</p>}
      {items !== null && items.length > 0 && (
        <div class="table-scroll">
          <table class="striped" data-testid="webhooks-table">
            <thead>
              <tr>
                <th scope="col">URL</th>
                <th scope="col">Events</th>
                <th scope="col">Description</th>
                <th scope="col">Created</th>
              </tr>
            </thead>
            <tbody>
              {items.map((w) => (
                <tr key={w.id} data-testid="webhook-row">
                  <td class="url">
                    <Link href={`/webhooks/${w.id}`}>{w.url}</Link>
                  </td>
                  <td>
                    <EventList events={w.events} />
                  </td>
                  <td>{w.description || "–"}</td>
                  <td>{when(w.created_at)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <CreateForm
        onCreated={(done) => {
          setCreated(done);
          void load();
        }}
      />
    </section>
  );
}

/** A webhook's events, every one by name (or "every event"). */
export function EventList({ events }: { events: readonly WebhookEvent[] }) {
  if (ALL_EVENTS.every((e) => events.includes(e))) return <span>every job event</span>;
  return (
    <span class="event-list">
      {events.map((e) => (
        <code key={e}>{e}</code>
      ))}
    </span>
  );
}
