/**
 * A real tslab kernel driven cell by cell, as a researcher drives it in Jupyter: started through
 * jupyter_client with the project's kernel spec, in notebooks/ (Jupyter's working directory for
 * a notebook there), each `run(code)` one execute request whose printed text and error come back.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { join } from 'node:path';
import { jupyterEnv, jupyterPython, KERNEL_NAME } from '../../lib/notebook/jupyter.ts';
import { projectRoot } from '../../lib/notebook/paths.ts';

const DRIVER_PY = String.raw`
import json, sys
from jupyter_client.manager import start_new_kernel
km, kc = start_new_kernel(kernel_name=sys.argv[1], cwd=sys.argv[2], startup_timeout=120)
print("RSN-READY", flush=True)
for line in sys.stdin:
    req = json.loads(line)
    texts, errors = [], []
    def hook(msg):
        t, c = msg["msg_type"], msg["content"]
        if t == "stream":
            texts.append(c["text"])
        elif t in ("execute_result", "display_data"):
            texts.append(c["data"].get("text/plain", ""))
        elif t == "error":
            errors.append("%s: %s" % (c["ename"], c["evalue"]))
    try:
        reply = kc.execute_interactive(req["code"], output_hook=hook, timeout=req.get("timeout", 900))
        ok = reply["content"]["status"] == "ok" and not errors
    except Exception as e:
        ok, errors = False, errors + ["%s: %s" % (type(e).__name__, e)]
    print("RSN-REPLY " + json.dumps({"ok": ok, "text": "".join(texts), "error": "\n".join(errors)}), flush=True)
kc.stop_channels()
km.shutdown_kernel(now=True)
`;

export interface CellReply {
  ok: boolean;
  /** Everything the cell printed or displayed as text. */
  text: string;
  error: string;
}

export class KernelSession {
  private buffer = '';
  private waiting: ((line: string) => void)[] = [];
  private stderr = '';

  private constructor(private readonly child: ChildProcessWithoutNullStreams) {
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      this.buffer += d;
      let nl: number;
      while ((nl = this.buffer.indexOf('\n')) >= 0) {
        const line = this.buffer.slice(0, nl);
        this.buffer = this.buffer.slice(nl + 1);
        if (line.startsWith('RSN-')) this.waiting.shift()?.(line);
      }
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
  }

  private next(): Promise<string> {
    return new Promise((resolve, reject) => {
      const onExit = (code: number | null) => reject(new Error(`the kernel driver exited (${code}):\n${this.stderr.slice(-3000)}`));
      this.child.once('exit', onExit);
      this.waiting.push((line) => {
        this.child.off('exit', onExit);
        resolve(line);
      });
    });
  }

  /** Start a kernel with these extra environment variables (RSN_RESULTS, RSN_QUICK, …). */
  static async start(env: Record<string, string>): Promise<KernelSession> {
    const child = spawn(jupyterPython(), ['-c', DRIVER_PY, KERNEL_NAME, join(projectRoot, 'notebooks')], { env: jupyterEnv(env), stdio: ['pipe', 'pipe', 'pipe'] });
    const session = new KernelSession(child);
    const ready = await session.next();
    if (ready !== 'RSN-READY') throw new Error(`kernel did not start: ${ready}`);
    return session;
  }

  async run(code: string): Promise<CellReply> {
    const reply = this.next();
    this.child.stdin.write(JSON.stringify({ code }) + '\n');
    const line = await reply;
    return JSON.parse(line.slice('RSN-REPLY '.length)) as CellReply;
  }

  /** Run a cell that must succeed; its text otherwise in the error. */
  async ok(code: string): Promise<string> {
    const r = await this.run(code);
    if (!r.ok) throw new Error(`cell failed: ${r.error}\n--- cell ---\n${code.slice(0, 400)}\n--- output ---\n${r.text.slice(-2000)}`);
    return r.text;
  }

  async close(): Promise<void> {
    this.child.stdin.end();
    await new Promise((resolve) => {
      if (this.child.exitCode !== null) resolve(null);
      else this.child.once('exit', resolve);
    });
  }
}
