/**
 * Headless Chromium for checking figures the way a reader sees them: find (or, as root on
 * Debian, install) a Chromium/Chrome executable, launch it headless and talk to it over the
 * DevTools protocol on a pipe (`--remote-debugging-pipe`: no port to collide with, no WebSocket
 * client, nothing downloaded). A page records every error it raises, so a caller can tell a
 * figure that drew from one that failed.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { accessSync, constants, existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { envVarName, readEnv } from '../env.ts';

/** Names the Chromium/Chrome executable to use instead of searching PATH. */
export const CHROMIUM_ENV_VAR = envVarName('chromium');
/** Searched on PATH in this order. */
export const CHROMIUM_NAMES: readonly string[] = ['chromium', 'chromium-browser', 'google-chrome'];
const APT_PACKAGE = 'chromium';

export function chromiumInstallCommand(): string {
  return `apt-get install -y --no-install-recommends ${APT_PACKAGE}`;
}

/** Chromium is absent and this process cannot install it; `message` says what to run. */
export class ChromiumUnavailableError extends Error {
  override name = 'ChromiumUnavailableError';
}

function isExecutableFile(p: string): boolean {
  try {
    if (!statSync(p).isFile()) return false;
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The executable named by RSN_CHROMIUM, else the first of CHROMIUM_NAMES on PATH, else null. */
export function findChromium(env: NodeJS.ProcessEnv = process.env): string | null {
  const override = readEnv('chromium', env);
  if (override) {
    // An explicit choice that does not work is an error, not a reason to pick another browser.
    if (!isExecutableFile(override)) throw new Error(`${CHROMIUM_ENV_VAR}=${override}: not an executable file; point it at a Chromium or Chrome binary, or unset it to search PATH for ${CHROMIUM_NAMES.join(', ')}`);
    return override;
  }
  for (const dir of (env['PATH'] ?? '').split(delimiter).filter(Boolean)) {
    for (const name of CHROMIUM_NAMES) {
      const p = join(dir, name);
      if (isExecutableFile(p)) return p;
    }
  }
  return null;
}

const isRoot = (): boolean => typeof process.getuid === 'function' && process.getuid() === 0;
const hasApt = (): boolean => existsSync('/etc/debian_version') && spawnSync('apt-get', ['--version'], { stdio: 'ignore' }).status === 0;

/** Whether ensureChromium could install Chromium here (root on Debian with apt-get). */
export function canInstallChromium(): boolean {
  return isRoot() && hasApt();
}

/**
 * A Chromium executable: found, or installed with apt-get when running as root on Debian.
 * Throws ChromiumUnavailableError naming the command to run otherwise.
 */
export function ensureChromium(opts: { install?: boolean; log?: (line: string) => void; env?: NodeJS.ProcessEnv } = {}): string {
  const env = opts.env ?? process.env;
  const log = opts.log ?? ((l: string) => console.log(l));
  const found = findChromium(env);
  if (found) return found;
  const how = `no Chromium or Chrome found (searched PATH for ${CHROMIUM_NAMES.join(', ')}; ${CHROMIUM_ENV_VAR} is unset). Install one, as root on Debian/Ubuntu:\n  ${chromiumInstallCommand()}\nor set ${CHROMIUM_ENV_VAR} to a Chromium/Chrome executable`;
  if (opts.install === false || !canInstallChromium()) throw new ChromiumUnavailableError(how);
  log(`Chromium: not found; installing Debian's ${APT_PACKAGE} package (${chromiumInstallCommand()})`);
  const aptEnv = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const apt = (args: string[]) => spawnSync('apt-get', args, { stdio: ['ignore', 'inherit', 'inherit'], env: aptEnv }).status === 0;
  // Stale package lists are the usual reason an install fails in a container; refresh once and retry.
  const ok = apt(['install', '-y', '--no-install-recommends', APT_PACKAGE]) || (apt(['update']) && apt(['install', '-y', '--no-install-recommends', APT_PACKAGE]));
  const installed = ok ? findChromium(env) : null;
  if (!installed) throw new ChromiumUnavailableError(`apt-get could not install ${APT_PACKAGE}. ${how}`);
  log(`Chromium: installed ${installed}`);
  return installed;
}

// ---- DevTools protocol over a pipe ----

interface CdpMessage {
  id?: number;
  method?: string;
  params?: Record<string, unknown>;
  result?: Record<string, unknown>;
  error?: { code: number; message: string };
  sessionId?: string;
}

type EventListener = (method: string, params: Record<string, unknown>) => void;

export interface LaunchOptions {
  /** Milliseconds to wait for one protocol reply (default 30 s). */
  timeoutMs?: number;
  /** Extra command-line switches. */
  args?: string[];
}

export interface Viewport {
  width: number;
  height: number;
}

/** A headless Chromium process driven over `--remote-debugging-pipe`. */
export class ChromiumBrowser {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (r: Record<string, unknown>) => void; reject: (e: Error) => void; method: string }>();
  private readonly listeners = new Map<string, EventListener>();
  private buffer = '';
  private exited: Error | null = null;
  private stderrTail = '';

  private constructor(
    private readonly proc: ChildProcess,
    private readonly profileDir: string,
    readonly executable: string,
    private readonly timeoutMs: number,
  ) {
    const out = proc.stdio[4] as Readable;
    out.setEncoding('utf8');
    out.on('data', (chunk: string) => this.receive(chunk));
    proc.stderr?.setEncoding('utf8');
    proc.stderr?.on('data', (chunk: string) => {
      this.stderrTail = (this.stderrTail + chunk).slice(-4000);
    });
    proc.on('exit', (code, signal) => this.fail(new Error(`Chromium (${executable}) exited (${signal ?? `status ${code}`})${this.stderrTail ? `:\n${this.stderrTail.trim()}` : ''}`)));
    proc.on('error', (e) => this.fail(new Error(`Chromium (${executable}) could not run: ${e.message}`)));
  }

  static async launch(executable: string, opts: LaunchOptions = {}): Promise<ChromiumBrowser> {
    const profileDir = mkdtempSync(join(tmpdir(), 'rsn-chromium-'));
    const args = [
      '--headless=new',
      // The sandbox needs user namespaces that containers (and root) usually lack; the pages are our own files.
      '--no-sandbox',
      '--remote-debugging-pipe',
      `--user-data-dir=${profileDir}`,
      // Containers often give /dev/shm a few MB, which crashes renderers.
      '--disable-dev-shm-usage',
      '--no-first-run',
      '--no-default-browser-check',
      '--disable-extensions',
      '--disable-background-networking',
      '--disable-component-update',
      '--hide-scrollbars',
      '--mute-audio',
      ...(opts.args ?? []),
      'about:blank',
    ];
    const proc = spawn(executable, args, { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'] });
    const browser = new ChromiumBrowser(proc, profileDir, executable, opts.timeoutMs ?? 30_000);
    try {
      await browser.send('Browser.getVersion');
    } catch (e) {
      await browser.close();
      throw e;
    }
    return browser;
  }

  private fail(e: Error): void {
    if (this.exited) return;
    this.exited = e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }

  private receive(chunk: string): void {
    this.buffer += chunk;
    let end: number;
    while ((end = this.buffer.indexOf('\0')) >= 0) {
      const text = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + 1);
      const msg = JSON.parse(text) as CdpMessage;
      if (msg.id !== undefined) {
        const p = this.pending.get(msg.id);
        if (!p) continue;
        this.pending.delete(msg.id);
        if (msg.error) p.reject(new Error(`DevTools ${p.method}: ${msg.error.message}`));
        else p.resolve(msg.result ?? {});
      } else if (msg.method) {
        this.listeners.get(msg.sessionId ?? '')?.(msg.method, msg.params ?? {});
      }
    }
  }

  /** One DevTools command; `sessionId` addresses a page. */
  send(method: string, params: Record<string, unknown> = {}, sessionId?: string): Promise<Record<string, unknown>> {
    if (this.exited) return Promise.reject(this.exited);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`DevTools ${method}: no reply from Chromium within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      this.pending.set(id, {
        method,
        resolve: (r) => (clearTimeout(timer), resolve(r)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
      (this.proc.stdio[3] as Writable).write(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }) + '\0');
    });
  }

  /** @internal used by ChromiumPage */
  listen(sessionId: string, listener: EventListener | null): void {
    if (listener) this.listeners.set(sessionId, listener);
    else this.listeners.delete(sessionId);
  }

  /** A new tab of the given size, recording its errors from the start. */
  async newPage(viewport: Viewport = { width: 1000, height: 600 }): Promise<ChromiumPage> {
    const { targetId } = (await this.send('Target.createTarget', { url: 'about:blank' })) as { targetId: string };
    const { sessionId } = (await this.send('Target.attachToTarget', { targetId, flatten: true })) as { sessionId: string };
    const page = new ChromiumPage(this, targetId, sessionId, this.timeoutMs);
    await Promise.all([
      this.send('Page.enable', {}, sessionId),
      this.send('Runtime.enable', {}, sessionId),
      this.send('Log.enable', {}, sessionId),
      this.send('Emulation.setDeviceMetricsOverride', { width: viewport.width, height: viewport.height, deviceScaleFactor: 1, mobile: false }, sessionId),
    ]);
    return page;
  }

  async close(): Promise<void> {
    if (!this.exited) {
      const gone = new Promise<void>((resolve) => this.proc.once('exit', () => resolve()));
      this.send('Browser.close').catch(() => undefined);
      const timer = setTimeout(() => this.proc.kill('SIGKILL'), 5000);
      await gone;
      clearTimeout(timer);
    }
    rmSync(this.profileDir, { recursive: true, force: true });
  }
}

function remoteObjectText(o: { type?: string; value?: unknown; description?: string; unserializableValue?: string }): string {
  if (o.type === 'string') return String(o.value);
  if (o.description !== undefined) return o.description;
  if (o.unserializableValue !== undefined) return o.unserializableValue;
  return JSON.stringify(o.value);
}

/** One tab. `errors` collects uncaught exceptions, console.error calls and browser-side errors (failed loads). */
export class ChromiumPage {
  readonly errors: string[] = [];
  private loadWaiters: (() => void)[] = [];

  constructor(
    private readonly browser: ChromiumBrowser,
    private readonly targetId: string,
    private readonly sessionId: string,
    private readonly timeoutMs: number,
  ) {
    browser.listen(sessionId, (method, params) => this.onEvent(method, params));
  }

  private onEvent(method: string, params: Record<string, unknown>): void {
    if (method === 'Page.loadEventFired') {
      const w = this.loadWaiters;
      this.loadWaiters = [];
      for (const f of w) f();
    } else if (method === 'Runtime.exceptionThrown') {
      const d = params['exceptionDetails'] as { text?: string; exception?: { description?: string }; url?: string; lineNumber?: number };
      this.errors.push(`uncaught ${d.exception?.description ?? d.text ?? 'exception'}${d.url ? ` (${d.url}:${(d.lineNumber ?? 0) + 1})` : ''}`);
    } else if (method === 'Runtime.consoleAPICalled' && params['type'] === 'error') {
      const args = (params['args'] as Parameters<typeof remoteObjectText>[0][]) ?? [];
      this.errors.push(`console.error: ${args.map(remoteObjectText).join(' ')}`);
    } else if (method === 'Log.entryAdded') {
      const e = params['entry'] as { level?: string; text?: string; url?: string };
      if (e.level === 'error') this.errors.push(`${e.text ?? 'error'}${e.url ? ` (${e.url})` : ''}`);
    }
  }

  /** Load `url` and wait for its load event. */
  async goto(url: string): Promise<void> {
    const loaded = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${url}: not loaded within ${this.timeoutMs} ms`)), this.timeoutMs);
      this.loadWaiters.push(() => (clearTimeout(timer), resolve()));
    });
    const r = (await this.browser.send('Page.navigate', { url }, this.sessionId)) as { errorText?: string };
    if (r.errorText) throw new Error(`${url}: ${r.errorText}`);
    await loaded;
  }

  /** Evaluate an expression in the page (awaiting a promise it returns); the value comes back as JSON. */
  async evaluate<T>(expression: string): Promise<T> {
    const r = (await this.browser.send('Runtime.evaluate', { expression, awaitPromise: true, returnByValue: true }, this.sessionId)) as {
      result: { value?: T };
      exceptionDetails?: { text?: string; exception?: { description?: string } };
    };
    if (r.exceptionDetails) throw new Error(`in the page: ${r.exceptionDetails.exception?.description ?? r.exceptionDetails.text ?? 'exception'}`);
    return r.result.value as T;
  }

  /** A PNG of the viewport. */
  async screenshot(): Promise<Buffer> {
    const { data } = (await this.browser.send('Page.captureScreenshot', { format: 'png' }, this.sessionId)) as { data: string };
    return Buffer.from(data, 'base64');
  }

  async close(): Promise<void> {
    this.browser.listen(this.sessionId, null);
    await this.browser.send('Target.closeTarget', { targetId: this.targetId }).catch(() => undefined);
  }
}
