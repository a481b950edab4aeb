/** The app shell: sign-in gate, header (navigation, connection badge), routed pages. */
import { lazy, Suspense, useEffect, useMemo, useSyncExternalStore } from 'react';
import type { User } from './api/types';
import { ConnectionBadge } from './components/ConnectionBadge';
import { AdminPage } from './pages/AdminPage';
import { HistoryPage } from './pages/HistoryPage';
import { LoginPage } from './pages/LoginPage';
import { NotesPage } from './pages/NotesPage';
import { CollabSocket, defaultSocketUrl, type ConnectionStatus } from './realtime/socket';
import { href, leaveAllowed, navigate, useHashRoute, type Route } from './router';
import { ServicesContext, SocketContext, useServices, type Services } from './services';

// The editor (CodeMirror, Markdown parsers) is most of the code: the sign-in page and the
// notes list do not wait for it.
const NotePage = lazy(() => import('./pages/NotePage').then((m) => ({ default: m.NotePage })));

export function App({ services }: { services: Services }) {
  return (
    <ServicesContext.Provider value={services}>
      <Root />
    </ServicesContext.Provider>
  );
}

function Root() {
  const { auth } = useServices();
  const authState = useSyncExternalStore(auth.subscribe, auth.getState);
  const route = useHashRoute();
  if (!authState) return <LoginPage reason={auth.signOutReason} />;
  return <SignedIn key={authState.user.id} user={authState.user} route={route} />;
}

function useConnectionStatus(socket: CollabSocket): ConnectionStatus {
  return useSyncExternalStore(
    (cb) => socket.addListener({ onStatus: cb }),
    () => socket.status,
  );
}

function SignedIn({ user, route }: { user: User; route: Route }) {
  const { auth } = useServices();
  const socket = useMemo(
    () =>
      new CollabSocket({
        url: defaultSocketUrl(),
        getToken: () => auth.token() ?? '',
        // A reload resumes this tab's session, so a held write token survives it (rule 9).
        sessionStore: window.sessionStorage,
      }),
    [auth],
  );
  const status = useConnectionStatus(socket);

  useEffect(() => {
    socket.start();
    const offRefreshed = auth.onTokenRefreshed((token) => {
      socket.refreshToken(token).catch(() => undefined); // the next hello carries it anyway
    });
    const offSocket = socket.addListener({
      onTokenExpired: () => void auth.refresh(),
      onStatus: (s) => {
        if (s.kind === 'offline' && s.reason === 'unauthorized') {
          auth.signOut('The server ended your session. Please sign in again.');
        }
      },
    });
    const online = () => socket.retryNow();
    window.addEventListener('online', online);
    return () => {
      window.removeEventListener('online', online);
      offRefreshed();
      offSocket();
      socket.stop();
    };
  }, [socket, auth]);

  const signOut = () => {
    if (!leaveAllowed()) return;
    auth.signOut();
    navigate('/');
  };

  return (
    <SocketContext.Provider value={socket}>
      <a href="#main" className="skip-link" onClick={(e) => { e.preventDefault(); document.getElementById('main')?.focus(); }}>
        Skip to content
      </a>
      <header className="app-header">
        <a href={href('/')} className="brand">
          collab
        </a>
        <nav aria-label="Main">
          <a href={href('/')} aria-current={route.page === 'notes' ? 'page' : undefined}>
            Notes
          </a>
          {user.role === 'admin' && (
            <a href={href('/admin')} aria-current={route.page === 'admin' ? 'page' : undefined}>
              Admin
            </a>
          )}
        </nav>
        <ConnectionBadge status={status} onRetry={() => (status.kind === 'offline' ? socket.start() : socket.retryNow())} />
        <span className="who">
          {user.name} <span className="meta">({user.role})</span>
        </span>
        <button type="button" onClick={signOut}>
          Sign out
        </button>
      </header>
      <div id="main" tabIndex={-1}>
        <Page route={route} me={user} />
      </div>
    </SocketContext.Provider>
  );
}

function Page({ route, me }: { route: Route; me: User }) {
  switch (route.page) {
    case 'notes':
    case 'login':
      return <NotesPage me={me} />;
    case 'note':
      return (
        <Suspense
          fallback={
            <main className="page" aria-busy="true">
              <p>Loading the editor…</p>
            </main>
          }
        >
          <NotePage key={route.id} noteId={route.id} me={me} />
        </Suspense>
      );
    case 'history':
      return <HistoryPage noteId={route.id} version={route.version} />;
    case 'admin':
      return <AdminPage me={me} />;
    case 'missing':
      return (
        <main className="page">
          <h1>Not found</h1>
          <p>
            Nothing lives at “{route.path}”. <a href={href('/')}>Back to the notes</a>
          </p>
        </main>
      );
  }
}
