import { useEffect, useState } from "preact/hooks";
import { useLocation } from "wouter-preact";
import { api, ok, type Schemas } from "../api/client";
import { ProblemNote } from "../components/problem";
import { completeOidc, signInOidc } from "../lib/oidc";
import { setSession, tokenSession } from "../lib/session";

type Config = Schemas["SignInConfig"];

export function SignIn() {
  const [config, setConfig] = useState<Config | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [user, setUser] = useState("");
  const [token, setToken] = useState("");
  const [busy, setBusy] = useState(false);
  const [location] = useLocation();

  useEffect(() => {
    api.GET("/auth/config").then((r) => setConfig(ok(r)), setError);
  }, []);

  async function devSignIn(event: Event) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const minted = ok(await api.POST("/auth/dev-token", { body: { user: user.trim() } }));
      setSession({
        token: minted.token,
        user: minted.user,
        expiresAt: Date.parse(minted.expires_at),
        via: "dev",
      });
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  }

  function useToken(event: Event) {
    event.preventDefault();
    try {
      setSession(tokenSession(token));
    } catch (e) {
      setError(e);
    }
  }

  return (
    <section class="signin">
      <h1>Sign in</h1>
      <ProblemNote error={error} testid="signin-problem" />
      {config?.oidc && (
        <article>
          <p>Sign in with your organisation's identity provider ({config.oidc.issuer}).</p>
          <button
            type="button"
            data-testid="oidc-sign-in"
            onClick={() => void signInOidc(config.oidc!, location).catch(setError)}
          >
            Sign in
          </button>
        </article>
      )}
      {config?.dev_sign_in && (
        <article>
          <form onSubmit={devSignIn} aria-labelledby="dev-title">
            <h2 id="dev-title">Dev sign-in</h2>
            <p class="muted">
              Development mode: the gateway mints a token for any user name (as{" "}
              <code>palette-token --sub NAME</code> does).
            </p>
            <label>
              User name
              <input
                name="user"
                autoComplete="username"
                required
                pattern="[A-Za-z0-9._:@\-]{1,200}"
                value={user}
                onInput={(e) => setUser(e.currentTarget.value)}
              />
            </label>
            <button type="submit" aria-busy={busy} disabled={busy}>
              Sign in as this user
            </button>
          </form>
        </article>
      )}
      {config && !config.dev_sign_in && !config.oidc && (
        <p class="muted">
          This gateway offers no sign-in on the page ({config.dev_sign_in_refused}); use a token.
        </p>
      )}
      <details>
        <summary>Use a bearer token</summary>
        <form onSubmit={useToken}>
          <label>
            Token
            <textarea
              name="token"
              rows={3}
              required
              value={token}
              onInput={(e) => setToken(e.currentTarget.value)}
            />
          </label>
          <button type="submit" class="secondary">
            Use this token
          </button>
        </form>
      </details>
    </section>
  );
}

export function OidcCallback() {
  const [error, setError] = useState<unknown>(null);
  const [, navigate] = useLocation();
  useEffect(() => {
    completeOidc().then((to) => navigate(to, { replace: true }), setError);
  }, []);
  return (
    <section>
      <h1>Signing in…</h1>
      <ProblemNote error={error} />
    </section>
  );
}
