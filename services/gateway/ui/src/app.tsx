import { Link, Redirect, Route, Router, Switch, useLocation } from "wouter-preact";
import { setSession, useSession } from "./lib/session";
import { signOutOidc } from "./lib/oidc";
import { SignIn, OidcCallback } from "./pages/signin";
import { JobsPage } from "./pages/jobs";
import { NewJobPage } from "./pages/newjob";
import { JobPage } from "./pages/job";
import { TemplatesPage } from "./pages/templates";
import { TemplatePage } from "./pages/template";
import { UsagePage } from "./pages/usage";
import { WebhooksPage } from "./pages/webhooks";
import { WebhookPage } from "./pages/webhook";
import { NotFound } from "./components/notfound";

const NAV = [
  { href: "/jobs", label: "Jobs" },
  { href: "/templates", label: "Templates" },
  { href: "/usage", label: "Usage" },
  { href: "/webhooks", label: "Webhooks" },
];

function Nav() {
  const [location] = useLocation();
  const current = useSession();
  return (
    <header class="site container-fluid">
      <nav aria-label="Main">
        <ul>
          <li>
            <Link href="/jobs" class="brand">
              <strong>Plot Palette</strong>
            </Link>
          </li>
        </ul>
        <ul>
          {NAV.map((item) => (
            <li key={item.href}>
              <Link
                href={item.href}
                aria-current={location.startsWith(item.href) ? "page" : undefined}
              >
                {item.label}
              </Link>
            </li>
          ))}
          {current && (
            <li>
              <details class="dropdown">
                <summary aria-label={`Signed in as ${current.user}`} data-testid="user-menu">
                  {current.user}
                </summary>
                <ul dir="rtl">
                  <li>
                    <a
                      href="#"
                      onClick={(event) => {
                        event.preventDefault();
                        const via = current.via;
                        setSession(null);
                        if (via === "oidc") void signOutOidc();
                      }}
                    >
                      Sign out
                    </a>
                  </li>
                </ul>
              </details>
            </li>
          )}
        </ul>
      </nav>
    </header>
  );
}

function Routes() {
  const current = useSession();
  const [location] = useLocation();
  if (location === "/callback") return <OidcCallback />;
  if (!current) return <SignIn />;
  return (
    <Switch>
      <Route path="/">
        <Redirect to="/jobs" replace />
      </Route>
      <Route path="/signin">
        <Redirect to="/jobs" replace />
      </Route>
      <Route path="/jobs" component={JobsPage} />
      <Route path="/jobs/new" component={NewJobPage} />
      <Route path="/jobs/:id">{(params) => <JobPage id={params.id} />}</Route>
      <Route path="/templates" component={TemplatesPage} />
      <Route path="/templates/new">{() => <TemplatePage id={null} />}</Route>
      <Route path="/templates/:id">{(params) => <TemplatePage id={params.id} />}</Route>
      <Route path="/usage" component={UsagePage} />
      <Route path="/webhooks" component={WebhooksPage} />
      <Route path="/webhooks/:id">{(params) => <WebhookPage id={params.id} />}</Route>
      <Route>
        <NotFound what="page" />
      </Route>
    </Switch>
  );
}

export function App() {
  return (
    <Router base="/ui">
      <a class="skip" href="#main">
        Skip to content
      </a>
      <Nav />
      <main id="main" class="container" tabIndex={-1}>
        <Routes />
      </main>
    </Router>
  );
}
