import { useEffect, useRef, useState } from "preact/hooks";
import { Link, useLocation } from "wouter-preact";
import { api, ok, type Delivery, type Webhook } from "../api/client";
import { ConfirmDialog } from "../components/confirm";
import { NotFound } from "../components/notfound";
import { ProblemNote } from "../components/problem";
import { attemptText, stillAwaited } from "../lib/deliveries";
import { when } from "../lib/format";
import { usePoll } from "../lib/poll";
import { EventList } from "./webhooks";

const PAGE = 20;
const WATCH_MS = 1000;

const WORDS: Record<Delivery["status"], string> = {
  pending: "Pending",
  delivered: "Delivered",
  failed: "Failed",
};

function DeliveryRow({
  delivery,
  busy,
  onResend,
}: {
  delivery: Delivery;
  busy: boolean;
  onResend: () => void;
}) {
  return (
    <tr data-testid="delivery" data-delivery-id={delivery.id} data-status={delivery.status}>
      <td>
        <span class={`badge ${delivery.status}`} data-testid="delivery-status">
          {WORDS[delivery.status]}
        </span>
        {delivery.status === "pending" && delivery.next_attempt_at && (
          <small class="muted"> next try {when(delivery.next_attempt_at)}</small>
        )}
      </td>
      <td>
        <code>{delivery.event_type}</code>
        {delivery.job_id && (
          <small>
            {" "}
            job <Link href={`/jobs/${delivery.job_id}`}>{delivery.job_id.slice(0, 8)}</Link>
          </small>
        )}
      </td>
      <td>
        {delivery.attempts.length === 0 ? (
          <span class="muted">none yet</span>
        ) : (
          <ol class="attempts" data-testid="attempts">
            {delivery.attempts.map((a) => (
              <li key={a.attempt} value={a.attempt} data-testid="attempt">
                <span data-testid="attempt-code">{attemptText(a)}</span>{" "}
                <small class="muted">{new Date(a.at).toLocaleTimeString()}</small>
              </li>
            ))}
          </ol>
        )}
      </td>
      <td class="time">{when(delivery.created_at)}</td>
      <td>
        <button
          type="button"
          class="secondary outline small"
          onClick={onResend}
          disabled={busy || delivery.status === "pending"}
          aria-label={`Resend the ${delivery.event_type} delivery of ${when(delivery.created_at)}`}
          data-testid="resend"
        >
          Resend
        </button>
      </td>
    </tr>
  );
}

export function WebhookPage({ id }: { id: string }) {
  const [webhook, setWebhook] = useState<Webhook | null>(null);
  const [missing, setMissing] = useState(false);
  const [deliveries, setDeliveries] = useState<Delivery[] | null>(null);
  const [older, setOlder] = useState<string | null>(null);
  const [awaited, setAwaited] = useState<Record<string, number>>({});
  const [error, setError] = useState<unknown>(null);
  const [note, setNote] = useState<string | null>(null);
  const [busy, setBusy] = useState("");
  const confirmRef = useRef<HTMLDialogElement>(null);
  const awaitedRef = useRef(awaited);
  awaitedRef.current = awaited;
  const [, navigate] = useLocation();
  const path = { webhook_id: id };

  async function loadDeliveries(limit = PAGE) {
    const page = ok(
      await api.GET("/webhooks/{webhook_id}/deliveries", {
        params: { path, query: { limit: Math.min(100, Math.max(PAGE, limit)) } },
      }),
    );
    setDeliveries(page.items);
    setOlder(page.next_cursor ?? null);
    setAwaited(stillAwaited(awaitedRef.current, page.items));
  }

  useEffect(() => {
    setMissing(false);
    setDeliveries(null);
    api
      .GET("/webhooks/{webhook_id}", { params: { path } })
      .then(async (r) => {
        if (r.response.status === 404) {
          setMissing(true);
          return;
        }
        setWebhook(ok(r));
        await loadDeliveries();
      })
      .catch(setError);
  }, [id]);

  const watching =
    Object.keys(awaited).length > 0 || (deliveries ?? []).some((d) => d.status === "pending");
  usePoll(() => loadDeliveries(deliveries?.length), WATCH_MS, watching);

  async function act(what: string, run: () => Promise<void>) {
    setBusy(what);
    setError(null);
    setNote(null);
    try {
      await run();
    } catch (e) {
      setError(e);
    } finally {
      setBusy("");
    }
  }

  const sendTest = () =>
    act("test", async () => {
      const sent = ok(await api.POST("/webhooks/{webhook_id}/test", { params: { path } }));
      setAwaited({ ...awaitedRef.current, [sent.delivery_id]: 1 });
      setNote("A test event (webhook.test) is on its way: its delivery shows below.");
    });

  const resend = (delivery: Delivery) =>
    act("resend", async () => {
      ok(
        await api.POST("/webhooks/{webhook_id}/deliveries/{delivery_id}/resend", {
          params: { path: { ...path, delivery_id: delivery.id } },
        }),
      );
      setAwaited({ ...awaitedRef.current, [delivery.id]: delivery.attempt_count + 1 });
      setNote(`The ${delivery.event_type} delivery is sent again, with the same webhook-id.`);
      await loadDeliveries(deliveries?.length);
    });

  const loadOlder = () =>
    act("older", async () => {
      if (!older) return;
      const page = ok(
        await api.GET("/webhooks/{webhook_id}/deliveries", {
          params: { path, query: { limit: PAGE, cursor: older } },
        }),
      );
      setDeliveries([...(deliveries ?? []), ...page.items]);
      setOlder(page.next_cursor ?? null);
    });

  const remove = () =>
    act("delete", async () => {
      confirmRef.current?.close();
      const result = await api.DELETE("/webhooks/{webhook_id}", { params: { path } });
      if (result.response.status !== 404) ok(result);
      navigate("/webhooks", { replace: true });
    });

  if (missing) return <NotFound what="webhook" />;
  if (!webhook) {
    return error ? <ProblemNote error={error} /> : <p aria-busy="true">Loading the webhook…</p>;
  }
  return (
    <section class="webhook" data-testid="webhook-page">
      <p>
        <Link href="/webhooks">← All webhooks</Link>
      </p>
      <div class="heading">
        <h1 class="url">{webhook.url}</h1>
        <div class="actions">
          <button
            type="button"
            onClick={() => void sendTest()}
            disabled={busy !== ""}
            aria-busy={busy === "test"}
            data-testid="send-test"
          >
            Send test event
          </button>
          <button
            type="button"
            class="contrast outline"
            onClick={() => confirmRef.current?.showModal()}
            disabled={busy !== ""}
            data-testid="delete"
          >
            Delete webhook
          </button>
        </div>
      </div>
      <dl class="figures">
        <div>
          <dt>Events</dt>
          <dd>
            <EventList events={webhook.events} />
          </dd>
        </div>
        <div>
          <dt>Description</dt>
          <dd>{webhook.description || "–"}</dd>
        </div>
        <div>
          <dt>Created</dt>
          <dd>{when(webhook.created_at)}</dd>
        </div>
        <div>
          <dt>Id</dt>
          <dd>
            <code>{webhook.id}</code>
          </dd>
        </div>
      </dl>
      {note && (
        <p class="note" role="status" data-testid="webhook-note">
          {note}
        </p>
      )}
      <ProblemNote error={error} />
      <div class="editor-bar">
        <h2>Deliveries</h2>
        {watching && (
          <span class="live" aria-live="polite">
            watching for new attempts…
          </span>
        )}
        <button
          type="button"
          class="secondary outline small"
          onClick={() => void act("refresh", () => loadDeliveries(deliveries?.length))}
          disabled={busy !== ""}
        >
          Refresh
        </button>
      </div>
      {deliveries === null && <p aria-busy="true">Loading deliveries…</p>}
      {deliveries !== null && deliveries.length === 0 && (
        <p data-testid="no-deliveries">Nothing sent yet: send a test event to try the endpoint.</p>
      )}
      {deliveries !== null && deliveries.length > 0 && (
        <div class="table-scroll">
          <table class="striped deliveries" data-testid="deliveries-table">
            <thead>
              <tr>
                <th scope="col">Status</th>
                <th scope="col">Event</th>
                <th scope="col">Attempts</th>
                <th scope="col">Time</th>
                <th scope="col">Action</th>
              </tr>
            </thead>
            <tbody>
              {deliveries.map((d) => (
                <DeliveryRow key={d.id} delivery={d} busy={busy !== ""} onResend={() => void resend(d)} />
              ))}
            </tbody>
          </table>
        </div>
      )}
      {older && (
        <button type="button" class="secondary outline" onClick={() => void loadOlder()} disabled={busy !== ""}>
          Older deliveries
        </button>
      )}
      <ConfirmDialog
        dialog={confirmRef}
        title="Delete this webhook?"
        keep="Keep it"
        yes="Delete"
        onYes={() => void remove()}
      >
        <p>
          Nothing more is sent to <code>{webhook.url}</code>, and its deliveries are no longer
          shown. Deliveries still pending fail when they come due.
        </p>
      </ConfirmDialog>
    </section>
  );
}
