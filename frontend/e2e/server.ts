/**
 * A real `collab serve` for the browser tests, in embedded mode (SQLite + in-process
 * leases), on a free port, with short heartbeat/lease timings so loss and handoff are
 * quick. The test owns the process: it can kill it (SIGKILL, a crash) or pause it
 * (SIGSTOP) and start it again on the same port and data directory.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const frontendDir = path.resolve(here, '..');
export const distDir = path.join(frontendDir, 'dist');
const collabBin = process.env.COLLAB_BIN ?? path.resolve(frontendDir, '../.venv/bin/collab');

/** How long the server may take to answer /livez after it is started. */
const START_TIMEOUT_MS = 30_000;

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (addr && typeof addr === 'object' ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

export interface AuthResult {
  token: string;
  user: { id: string; name: string; role: string };
}

export class CollabServer {
  readonly dataDir = mkdtempSync(path.join(tmpdir(), 'collab-e2e-'));
  private proc: ChildProcess | null = null;
  private log: string[] = [];

  /** `env`: settings for this server on top of the defaults below (e.g. short idle timings). */
  constructor(
    readonly port: number,
    private readonly extraEnv: Record<string, string> = {},
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  private env(): NodeJS.ProcessEnv {
    return {
      ...process.env,
      COLLAB_SQLITE_PATH: path.join(this.dataDir, 'collab.db'),
      COLLAB_STATIC_DIR: distDir,
      COLLAB_HEARTBEAT_MS: '1000',
      COLLAB_LEASE_TTL_MS: '3000',
      COLLAB_LOCK_DELAY_MS: '500',
      COLLAB_REVISION_EVERY_VERSIONS: '3',
      COLLAB_LOG_LEVEL: 'warning',
      ...this.extraEnv,
    };
  }

  async start(): Promise<void> {
    if (!existsSync(path.join(distDir, 'index.html'))) {
      throw new Error(`${distDir}/index.html is missing: run "npm run build" before "npm run e2e"`);
    }
    if (!existsSync(collabBin)) throw new Error(`collab executable not found at ${collabBin} (set COLLAB_BIN)`);
    const proc = spawn(collabBin, ['serve', '--host', '127.0.0.1', '--port', String(this.port), '--graceful-shutdown-s', '2'], {
      env: this.env(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.proc = proc;
    const keep = (chunk: Buffer) => {
      this.log.push(chunk.toString());
      if (this.log.length > 200) this.log.shift();
    };
    proc.stdout?.on('data', keep);
    proc.stderr?.on('data', keep);
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null) throw new Error(`collab serve exited with ${proc.exitCode}:\n${this.output()}`);
      try {
        const res = await fetch(`${this.url}/livez`);
        if (res.ok) return;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`collab serve did not become live in time:\n${this.output()}`);
  }

  output(): string {
    return this.log.join('');
  }

  /** Crash the server: SIGKILL, no graceful shutdown. */
  async kill(): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGKILL');
    await exited;
    this.proc = null;
  }

  pause(): void {
    this.proc?.kill('SIGSTOP');
  }

  async stop(): Promise<void> {
    await this.kill();
  }

  /** Stop the server and delete its data directory. */
  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  /** `collab user add NAME --role admin`, reading the password from stdin. */
  addAdmin(name: string, password: string): void {
    const res = spawnSync(collabBin, ['user', 'add', name, '--role', 'admin'], {
      env: this.env(),
      input: `${password}\n`,
      encoding: 'utf8',
    });
    if (res.status !== 0) throw new Error(`collab user add failed: ${res.stderr}`);
  }

  async api<T>(method: string, url: string, token: string | null, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { 'Content-Type': 'application/json' };
    if (token) headers.Authorization = `Bearer ${token}`;
    const res = await fetch(`${this.url}${url}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${url} -> ${res.status} ${text}`);
    return (text ? JSON.parse(text) : null) as T;
  }

  register(username: string, password: string): Promise<AuthResult> {
    return this.api<AuthResult>('POST', '/api/auth/register', null, { username, password });
  }

  login(username: string, password: string): Promise<AuthResult> {
    return this.api<AuthResult>('POST', '/api/auth/login', null, { username, password });
  }
}
