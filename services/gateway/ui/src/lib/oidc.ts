// Production sign-in: OpenID Connect authorization code with PKCE (oidc-client-ts), against
// the issuer the gateway trusts, with the client id the gateway's settings name (GET /auth/config).
import { UserManager, WebStorageStateStore } from "oidc-client-ts";
import type { Schemas } from "../api/client";
import { setSession } from "./session";

type Oidc = NonNullable<Schemas["SignInConfig"]["oidc"]>;
const CONFIG_KEY = "palette.oidc";

function manager(config: Oidc): UserManager {
  const base = `${location.origin}/ui`;
  return new UserManager({
    authority: config.issuer,
    client_id: config.client_id,
    redirect_uri: `${base}/callback`,
    post_logout_redirect_uri: `${base}/`,
    response_type: "code",
    scope: config.scope,
    ...(config.audience ? { extraQueryParams: { audience: config.audience } } : {}),
    userStore: new WebStorageStateStore({ store: sessionStorage }),
    automaticSilentRenew: false,
  });
}

export async function signInOidc(config: Oidc, returnTo: string): Promise<void> {
  sessionStorage.setItem(CONFIG_KEY, JSON.stringify(config));
  await manager(config).signinRedirect({ state: { returnTo } });
}

/** Finish the redirect: the access token becomes the page's bearer token. */
export async function completeOidc(): Promise<string> {
  const raw = sessionStorage.getItem(CONFIG_KEY);
  if (!raw) throw new Error("no sign-in was started in this tab");
  const user = await manager(JSON.parse(raw) as Oidc).signinRedirectCallback();
  const expiresAt = (user.expires_at ?? Date.now() / 1000 + 300) * 1000;
  setSession({ token: user.access_token, user: user.profile.sub, expiresAt, via: "oidc" });
  const state = user.state as { returnTo?: string } | undefined;
  return state?.returnTo ?? "/jobs";
}

export async function signOutOidc(): Promise<void> {
  const raw = sessionStorage.getItem(CONFIG_KEY);
  if (raw) await manager(JSON.parse(raw) as Oidc).removeUser();
}
