/**
 * Hostile inputs to `rsn convert`, through the real command line (a child process running
 * weights-converter/cli.ts for the table of refusals, cli/rsn.ts for the rest): every case builds a bad checkpoint or a dangerous output path from the fixtures
 * in a scratch dir, runs the command and checks the exit code, an error naming the file, tensor
 * or path at fault, that nothing was written (no output, no temp dir) and that every byte of the
 * scratch dir — the input above all — is as it was. Then the conversion is interrupted by
 * signals mid-way: SIGINT / SIGTERM / SIGHUP clean up, SIGKILL leaves a temp dir that the next
 * run for the same output removes before producing the same bytes as an uninterrupted run.
 *
 * Run: node --import tsx --test test/hostile-converter.test.ts
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, mkdir, readdir, readFile, readlink, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { constants } from 'node:os';
import { basename, dirname, join, relative } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  addTensor,
  appendBytes,
  BF16_FILE,
  BF16_FIXTURE,
  copyFixture,
  editConfig,
  editIndex,
  entries,
  entry,
  F32_SHARDED_FIXTURE,
  INDEX,
  insertGap,
  makeTempDir,
  overlapTensors,
  patchHeaderBytes,
  pokeBits,
  pokeFloat32,
  removeTensor,
  rewriteHeaderText,
  rewriteSafetensors,
  setDtype,
  setHeaderLength,
  setShape,
  SHARD1,
  SHARD2,
  truncateFile,
  writeRandomCheckpoint,
} from './helpers/corrupt-checkpoints.ts';

// ---- running the command ---------------------------------------------------------------------

/** `rsn convert …`: the project's command line, as a user runs it. */
const RSN = [fileURLToPath(new URL('../cli/rsn.ts', import.meta.url)), 'convert'];
/**
 * The convert command's own entry point (the same convertCli that rsn dispatches to), without
 * rsn's other commands: those load TF.js at start-up, which would add a few tenths of a second to
 * each of the many refusal runs.
 */
const CONVERT = [fileURLToPath(new URL('../weights-converter/cli.ts', import.meta.url))];
/** tsx by URL: a bare `--import tsx` would be resolved from the child's cwd, which may be a scratch dir. */
const TSX = import.meta.resolve('tsx');

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function startConvert(args: string[], opts: { cwd?: string; entry?: string[] } = {}): { child: ChildProcess; done: Promise<Run>; stderrSoFar: () => string } {
  const child = spawn(process.execPath, ['--import', TSX, ...(opts.entry ?? RSN), ...args], { cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<Run>((res, rej) => {
    child.on('error', rej);
    child.on('close', (code, signal) => res({ code, signal, stdout, stderr }));
  });
  return { child, done, stderrSoFar: () => stderr };
}

const convert = (args: string[], opts: { cwd?: string; entry?: string[] } = {}): Promise<Run> => startConvert(args, opts).done;

// ---- what a directory holds ------------------------------------------------------------------

async function sha256(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Every entry under `root` (symlinks not followed): path → "dir", "link → target" or the file's sha256. */
async function snapshot(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (dir: string, rel: string): Promise<void> => {
    for (const name of (await readdir(dir)).sort()) {
      const p = join(dir, name);
      const r = rel ? `${rel}/${name}` : name;
      const st = await lstat(p);
      if (st.isSymbolicLink()) out.set(r, `link → ${await readlink(p)}`);
      else if (st.isDirectory()) {
        out.set(r, 'dir');
        await walk(p, r);
      } else out.set(r, await sha256(p));
    }
  };
  await walk(root, '');
  return out;
}

/** Entries next to `out` named `out` or `out.<anything>` (the output, temp dirs, replaced outputs). */
async function leftovers(out: string): Promise<string[]> {
  const base = basename(out);
  return (await readdir(dirname(out)).catch(() => [] as string[])).filter((n) => n === base || n.startsWith(`${base}.`));
}

const escapeRe = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

const scratchDirs: string[] = [];
async function scratch(): Promise<string> {
  const d = await makeTempDir('rsn-hostile-converter-');
  scratchDirs.push(d);
  return d;
}
after(async () => {
  for (const d of scratchDirs) await rm(d, { recursive: true, force: true });
});

/** A pid that no process has now: a child that has already exited (and been reaped). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', '']);
  assert.ok(r.pid > 0);
  return r.pid;
}

// ---- the table -------------------------------------------------------------------------------

interface Ctx {
  /** The scratch dir; everything a case creates lives here. */
  dir: string;
  /** The copied fixture checkpoint, `<dir>/ckpt`. */
  ckpt: string;
  /** The default output path, `<dir>/out`. */
  out: string;
  /** `<ckpt>/model.safetensors` (bf16 fixture). */
  file: string;
}

interface Case {
  name: string;
  fixture: 'bf16' | 'sharded';
  build?: (c: Ctx) => Promise<void>;
  /** Command-line arguments after `convert`; default `[ckpt, out]`. */
  args?: (c: Ctx) => string[];
  cwd?: (c: Ctx) => string;
  /** Matched against stderr; built from the context, so it can name the exact paths. */
  message: (c: Ctx) => RegExp;
  /** The path that must not appear (default `out`). */
  outPath?: (c: Ctx) => string;
}

const re = (s: string): string => escapeRe(s);
const N = 'model.norm.weight';

/** Output paths that are, contain or lie inside the input, named in every way symlinks allow. */
const outputCases: Case[] = [
  {
    name: 'output = input (same path), --force',
    fixture: 'bf16',
    args: (c) => [c.ckpt, c.ckpt, '--force'],
    message: (c) => new RegExp(`output directory ${re(c.ckpt)} would replace the input checkpoint ${re(c.ckpt)}; choose an output directory outside the input`),
  },
  {
    name: 'output = parent of the input, --force',
    fixture: 'bf16',
    args: (c) => [c.ckpt, c.dir, '--force'],
    message: (c) => new RegExp(`output directory ${re(c.dir)} would replace the input checkpoint ${re(c.ckpt)}, which lies inside it`),
    outPath: (c) => c.ckpt,
  },
  {
    name: 'output is a symlink to the input, --force',
    fixture: 'bf16',
    build: (c) => symlink(c.ckpt, c.out),
    args: (c) => [c.ckpt, c.out, '--force'],
    message: (c) => new RegExp(`output directory ${re(c.out)} \\(real path ${re(c.ckpt)}\\) would replace the input checkpoint ${re(c.ckpt)};`),
  },
  {
    name: 'output is a symlink to the input, without --force',
    fixture: 'bf16',
    build: (c) => symlink(c.ckpt, c.out),
    message: (c) => new RegExp(`output directory ${re(c.out)} \\(real path ${re(c.ckpt)}\\) would replace the input checkpoint`),
  },
  {
    name: 'output is a relative symlink to the input, --force',
    fixture: 'bf16',
    build: (c) => symlink('ckpt', c.out),
    args: (c) => [c.ckpt, c.out, '--force'],
    message: (c) => new RegExp(`output directory ${re(c.out)} \\(real path ${re(c.ckpt)}\\) would replace the input checkpoint`),
  },
  {
    name: 'input named through a symlink, output its real path, --force',
    fixture: 'bf16',
    build: (c) => symlink(c.ckpt, join(c.dir, 'in-link')),
    args: (c) => [join(c.dir, 'in-link'), c.ckpt, '--force'],
    message: (c) => new RegExp(`output directory ${re(c.ckpt)} would replace the input checkpoint ${re(join(c.dir, 'in-link'))} \\(real path ${re(c.ckpt)}\\)`),
    outPath: (c) => c.ckpt,
  },
  {
    name: 'output names the input through a symlinked parent, --force',
    fixture: 'bf16',
    build: (c) => symlink(c.dir, join(c.dir, 'alias')),
    args: (c) => [c.ckpt, join(c.dir, 'alias', 'ckpt'), '--force'],
    message: (c) => new RegExp(`output directory ${re(join(c.dir, 'alias', 'ckpt'))} \\(real path ${re(c.ckpt)}\\) would replace the input checkpoint`),
    outPath: (c) => c.ckpt,
  },
  {
    name: 'output is a symlink to the parent of the input, --force',
    fixture: 'bf16',
    build: (c) => symlink(c.dir, c.out),
    args: (c) => [c.ckpt, c.out, '--force'],
    message: (c) => new RegExp(`output directory ${re(c.out)} \\(real path ${re(c.dir)}\\) would replace the input checkpoint ${re(c.ckpt)}, which lies inside it`),
  },
  {
    name: 'output inside the input',
    fixture: 'bf16',
    args: (c) => [c.ckpt, join(c.ckpt, 'converted')],
    message: (c) => new RegExp(`output directory ${re(join(c.ckpt, 'converted'))} lies inside the input checkpoint ${re(c.ckpt)}`),
    outPath: (c) => join(c.ckpt, 'converted'),
  },
  {
    name: 'output inside the input through a symlink, --force',
    fixture: 'bf16',
    build: (c) => symlink(c.ckpt, join(c.dir, 'link')),
    args: (c) => [c.ckpt, join(c.dir, 'link', 'converted'), '--force'],
    message: (c) => new RegExp(`output directory ${re(join(c.dir, 'link', 'converted'))} \\(real path ${re(join(c.ckpt, 'converted'))}\\) lies inside the input checkpoint`),
    outPath: (c) => join(c.ckpt, 'converted'),
  },
  {
    name: 'symlinked working directory: input through it, output relative, --force',
    fixture: 'bf16',
    build: (c) => symlink(c.dir, join(c.dir, 'wd')),
    cwd: (c) => join(c.dir, 'wd'),
    args: (c) => [join(c.dir, 'wd', 'ckpt'), 'ckpt', '--force'],
    message: (c) => new RegExp(`output directory ${re(c.ckpt)} would replace the input checkpoint ${re(join(c.dir, 'wd', 'ckpt'))} \\(real path ${re(c.ckpt)}\\)`),
    outPath: (c) => c.ckpt,
  },
  {
    name: 'symlinked working directory: input relative, output through it, --force',
    fixture: 'bf16',
    build: (c) => symlink(c.dir, join(c.dir, 'wd')),
    cwd: (c) => join(c.dir, 'wd'),
    args: (c) => ['ckpt', join(c.dir, 'wd', 'ckpt'), '--force'],
    message: (c) => new RegExp(`output directory ${re(join(c.dir, 'wd', 'ckpt'))} \\(real path ${re(c.ckpt)}\\) would replace the input checkpoint ${re(c.ckpt)}`),
    outPath: (c) => c.ckpt,
  },
  {
    name: 'output is a dangling symlink',
    fixture: 'bf16',
    build: (c) => symlink(join(c.dir, 'nowhere'), c.out),
    args: (c) => [c.ckpt, c.out, '--force'],
    message: (c) => new RegExp(`output path ${re(c.out)}: ${re(c.out)} is a symbolic link to ${re(join(c.dir, 'nowhere'))}, which does not exist`),
  },
  {
    name: 'non-empty output without --force',
    fixture: 'bf16',
    build: async (c) => {
      await mkdir(c.out);
      await writeFile(join(c.out, 'keep.txt'), 'mine');
    },
    message: (c) => new RegExp(`output directory ${re(c.out)} exists and is not empty \\(1 entry\\); pass --force`),
  },
];

/** Refusals of bad safetensors files and indexes. */
const checkpointCases: Case[] = [
  // new rules
  {
    name: 'duplicate tensor name in the header',
    fixture: 'bf16',
    build: (c) => rewriteHeaderText(c.file, (t) => t.replace(/"model\.norm\.weight":\{[^}]*\}/, (m) => `${m},${m}`)),
    message: (c) => new RegExp(`${re(c.file)}: tensor model\\.norm\\.weight appears twice in the header`),
  },
  {
    name: 'duplicate tensor name spelt with a JSON escape',
    fixture: 'bf16',
    build: (c) => rewriteHeaderText(c.file, (t) => t.replace(/"model\.norm\.weight":\{[^}]*\}/, (m) => `${m},${m.replace('model.norm', 'model\\u002enorm')}`)),
    message: (c) => new RegExp(`${re(c.file)}: tensor model\\.norm\\.weight appears twice in the header`),
  },
  {
    name: 'duplicate key inside a tensor entry',
    fixture: 'bf16',
    build: (c) => rewriteHeaderText(c.file, (t) => t.replace('"model.norm.weight":{', '"model.norm.weight":{"dtype":"F32",')),
    message: (c) => new RegExp(`${re(c.file)}: duplicate key "dtype" in header entry for tensor model\\.norm\\.weight`),
  },
  {
    name: 'two __metadata__ entries',
    fixture: 'bf16',
    build: (c) => rewriteHeaderText(c.file, (t) => `{"__metadata__":{"format":"np"},${t.slice(1)}`),
    message: (c) => new RegExp(`${re(c.file)}: header has two "__metadata__" entries`),
  },
  {
    name: 'hole between two tensors',
    fixture: 'bf16',
    build: (c) => insertGap(c.file, 'model.layers.0.input_layernorm.weight', 8),
    message: (c) => new RegExp(`${re(c.file)}: data section bytes \\[76928, 76936\\) belong to no tensor \\(a hole between model\\.layers\\.0\\.input_layernorm\\.weight and model\\.layers\\.0\\.mlp\\.down_proj\\.weight\\)`),
  },
  {
    name: 'hole before the first tensor',
    fixture: 'bf16',
    build: (c) =>
      rewriteSafetensors(c.file, (st) => {
        st.data = Buffer.concat([Buffer.alloc(4), st.data]);
        for (const [, e] of entries(st)) e.data_offsets = [e.data_offsets[0] + 4, e.data_offsets[1] + 4];
      }),
    message: (c) => new RegExp(`${re(c.file)}: data section bytes \\[0, 4\\) belong to no tensor \\(a hole before lm_head\\.weight\\)`),
  },
  {
    name: 'trailing bytes after the last tensor',
    fixture: 'bf16',
    build: (c) => appendBytes(c.file, 16),
    message: (c) => new RegExp(`${re(c.file)}: 16 trailing bytes after the last tensor model\\.norm\\.weight \\(ends at data offset 349568\\)`),
  },
  {
    name: 'hole in the second shard of a sharded checkpoint',
    fixture: 'sharded',
    build: (c) => insertGap(join(c.ckpt, SHARD2), 'model.layers.2.mlp.down_proj.weight', 4),
    message: (c) => new RegExp(`${re(join(c.ckpt, SHARD2))}: data section bytes \\[93696, 93700\\) belong to no tensor \\(a hole between model\\.layers\\.2\\.mlp\\.down_proj\\.weight and model\\.layers\\.2\\.mlp\\.gate_proj\\.weight\\)`),
  },
  {
    name: 'non-string __metadata__ value (number)',
    fixture: 'bf16',
    build: (c) =>
      rewriteSafetensors(c.file, (st) => {
        st.header['__metadata__'] = { format: 'pt', step: 3 };
      }),
    message: (c) => new RegExp(`${re(c.file)}: "__metadata__" value for key "step" must be a string, found 3`),
  },
  {
    name: 'non-string __metadata__ value (object)',
    fixture: 'bf16',
    build: (c) =>
      rewriteSafetensors(c.file, (st) => {
        st.header['__metadata__'] = { format: { nested: true } };
      }),
    message: (c) => new RegExp(`${re(c.file)}: "__metadata__" value for key "format" must be a string, found \\{"nested":true\\}`),
  },
  {
    name: 'invalid UTF-8 in the header',
    fixture: 'bf16',
    build: async (c) => {
      await rewriteSafetensors(c.file, (st) => {
        st.header['__metadata__'] = { format: 'pt', note: 'AB' };
      });
      await patchHeaderBytes(c.file, '"AB"', Buffer.from([0x22, 0xff, 0xfe, 0x22]));
    },
    message: (c) => new RegExp(`${re(c.file)}: header is not valid UTF-8 \\(malformed at header byte \\d+, file offset \\d+\\)`),
  },
  {
    name: 'invalid UTF-8 in a tensor name (truncated multi-byte sequence)',
    fixture: 'bf16',
    build: (c) => patchHeaderBytes(c.file, 'norm', Buffer.from([0x6e, 0xe2, 0x82, 0x6d])),
    message: (c) => new RegExp(`${re(c.file)}: header is not valid UTF-8`),
  },
  {
    name: 'index omits a tensor that a shard holds',
    fixture: 'sharded',
    build: (c) =>
      editIndex(c.ckpt, (idx) => {
        delete idx.weight_map['model.layers.1.mlp.up_proj.weight'];
      }),
    message: (c) => new RegExp(`${re(join(c.ckpt, INDEX))}: weight_map omits tensor model\\.layers\\.1\\.mlp\\.up_proj\\.weight, which shard model-0000[12]-of-00002\\.safetensors holds`),
  },
  {
    name: 'index lists a tensor twice',
    fixture: 'sharded',
    build: async (c) => {
      const p = join(c.ckpt, INDEX);
      const text = await readFile(p, 'utf8');
      await writeFile(p, text.replace(/("model\.norm\.weight": "[^"]+")/, `"model.norm.weight": "${SHARD1}",\n    $1`));
    },
    message: (c) => new RegExp(`${re(join(c.ckpt, INDEX))}: weight_map lists tensor model\\.norm\\.weight twice`),
  },
  {
    name: 'model.safetensors is a symlink leaving the input dir',
    fixture: 'bf16',
    build: async (c) => {
      await rename(c.file, join(c.dir, 'elsewhere.safetensors'));
      await symlink(join(c.dir, 'elsewhere.safetensors'), c.file);
    },
    message: (c) => new RegExp(`${re(c.file)} is a symlink resolving to ${re(join(c.dir, 'elsewhere.safetensors'))}, outside; weights files must lie inside the checkpoint directory ${re(c.ckpt)}`),
  },
  {
    name: 'model.safetensors is a relative symlink to ../',
    fixture: 'bf16',
    build: async (c) => {
      await rename(c.file, join(c.dir, 'elsewhere.safetensors'));
      await symlink('../elsewhere.safetensors', c.file);
    },
    message: (c) => new RegExp(`${re(c.file)} is a symlink resolving to ${re(join(c.dir, 'elsewhere.safetensors'))}, outside`),
  },
  {
    name: 'tokenizer.json is a symlink to a file outside the checkpoint (a system file)',
    fixture: 'bf16',
    build: async (c) => {
      await writeFile(join(c.dir, 'secret.txt'), 'not for the output');
      await symlink(join(c.dir, 'secret.txt'), join(c.ckpt, 'tokenizer.json'));
    },
    message: (c) => new RegExp(`${re(join(c.ckpt, 'tokenizer.json'))}: is a symlink resolving to ${re(join(c.dir, 'secret.txt'))}, outside the checkpoint directory ${re(c.ckpt)}; side files \\(config\\.json, tokenizer\\.json, tokenizer_config\\.json\\) must be regular files inside it`),
  },
  {
    name: 'tokenizer_config.json is a directory',
    fixture: 'bf16',
    build: (c) => mkdir(join(c.ckpt, 'tokenizer_config.json')),
    message: (c) => new RegExp(`${re(join(c.ckpt, 'tokenizer_config.json'))}: is not a regular file in the checkpoint directory`),
  },
  // refused before these rules; kept here so they stay refused through the command line
  {
    name: 'file shorter than the 8-byte prefix',
    fixture: 'bf16',
    build: (c) => truncateFile(c.file, 5),
    message: (c) => new RegExp(`${re(c.file)}: file is truncated: 5 bytes, shorter than the 8-byte`),
  },
  {
    name: 'file truncated inside the data section',
    fixture: 'bf16',
    build: (c) => truncateFile(c.file, 200_000),
    message: (c) => new RegExp(`${re(c.file)}: tensor \\S+: data_offsets \\[\\d+, \\d+\\] run past the data section`),
  },
  {
    name: 'header length past the end of the file',
    fixture: 'bf16',
    build: (c) => setHeaderLength(c.file, 352_672n),
    message: (c) => new RegExp(`${re(c.file)}: file is truncated: header length 352672 needs 352680 bytes but the file has 352672`),
  },
  {
    name: 'absurd header length',
    fixture: 'bf16',
    build: (c) => setHeaderLength(c.file, 1n << 40n),
    message: (c) => new RegExp(`${re(c.file)}: header length 1099511627776 bytes is above the 100000000-byte limit`),
  },
  {
    name: 'header that is not JSON',
    fixture: 'bf16',
    build: (c) => patchHeaderBytes(c.file, '{', Buffer.from('#')),
    message: (c) => new RegExp(`${re(c.file)}: header is not valid JSON`),
  },
  {
    name: 'entry without data_offsets',
    fixture: 'bf16',
    build: (c) =>
      rewriteSafetensors(c.file, (st) => {
        delete (st.header[N] as Record<string, unknown>)['data_offsets'];
      }),
    message: (c) => new RegExp(`${re(c.file)}: header entry for tensor model\\.norm\\.weight lacks "data_offsets"`),
  },
  {
    name: 'overlapping tensors',
    fixture: 'bf16',
    build: (c) => overlapTensors(c.file, 'model.embed_tokens.weight', 'model.layers.0.input_layernorm.weight'),
    message: (c) => new RegExp(`${re(c.file)}: tensors model\\.embed_tokens\\.weight \\(data_offsets \\[38400, 76800\\]\\) and model\\.layers\\.0\\.input_layernorm\\.weight \\(data_offsets \\[38402, 38530\\]\\) overlap`),
  },
  {
    name: 'byte length not matching the shape',
    fixture: 'bf16',
    build: (c) => setShape(c.file, N, [65]),
    message: (c) => new RegExp(`${re(c.file)}: tensor model\\.norm\\.weight: byte length 128 .* ≠ 65 elements`),
  },
  {
    name: 'dtype unknown to safetensors',
    fixture: 'bf16',
    build: (c) => setDtype(c.file, 'model.layers.1.mlp.up_proj.weight', 'Q4_K'),
    message: (c) => new RegExp(`unsupported dtype Q4_K for tensor model\\.layers\\.1\\.mlp\\.up_proj\\.weight in file ${re(c.file)}`),
  },
  {
    name: 'safetensors dtype we do not convert (I16)',
    fixture: 'bf16',
    build: (c) => setDtype(c.file, N, 'I16'),
    message: (c) => new RegExp(`unsupported dtype I16 for tensor model\\.norm\\.weight in file ${re(c.file)}`),
  },
  {
    name: 'missing tensor',
    fixture: 'bf16',
    build: (c) => removeTensor(c.file, 'model.layers.2.self_attn.v_proj.weight'),
    message: (c) => new RegExp(`${re(c.ckpt)}: missing tensor model\\.layers\\.2\\.self_attn\\.v_proj\\.weight \\(searched model\\.safetensors\\)`),
  },
  {
    name: 'wrong shape',
    fixture: 'bf16',
    build: (c) => setShape(c.file, 'model.layers.0.self_attn.q_proj.weight', [32, 128]),
    message: (c) => new RegExp(`${re(c.file)}: tensor model\\.layers\\.0\\.self_attn\\.q_proj\\.weight has shape \\[32, 128\\], expected \\[64, 64\\]`),
  },
  {
    name: 'unexpected tensor',
    fixture: 'bf16',
    build: (c) => addTensor(c.file, 'model.layers.0.mlp.extra_proj.weight', 'BF16', [1, 2, 3]),
    message: (c) => new RegExp(`${re(c.file)}: unexpected tensor model\\.layers\\.0\\.mlp\\.extra_proj\\.weight`),
  },
  {
    name: 'config with fewer layers than the weights',
    fixture: 'bf16',
    build: (c) =>
      editConfig(c.ckpt, (cfg) => {
        cfg['num_hidden_layers'] = 2;
      }),
    message: (c) => new RegExp(`${re(c.file)}: unexpected tensor model\\.layers\\.2\\.`),
  },
  {
    name: 'shard path escaping the checkpoint dir (../x.safetensors)',
    fixture: 'sharded',
    build: async (c) => {
      await writeFile(join(c.dir, 'x.safetensors'), await readFile(join(c.ckpt, SHARD2)));
      await editIndex(c.ckpt, (idx) => {
        for (const [k, v] of Object.entries(idx.weight_map)) if (v === SHARD2) idx.weight_map[k] = '../x.safetensors';
      });
    },
    message: (c) => new RegExp(`${re(join(c.ckpt, INDEX))}: shard file "\\.\\./x\\.safetensors" \\(for tensor \\S+\\) escapes the checkpoint directory`),
  },
  {
    name: 'absolute shard path',
    fixture: 'sharded',
    build: (c) =>
      editIndex(c.ckpt, (idx) => {
        idx.weight_map[N] = join(c.ckpt, SHARD2);
      }),
    message: () => /shard file ".*" \(for tensor model\.norm\.weight\) is an absolute path/,
  },
  {
    name: 'shard symlink resolving outside the checkpoint dir',
    fixture: 'sharded',
    build: async (c) => {
      await rename(join(c.ckpt, SHARD2), join(c.dir, 'elsewhere.safetensors'));
      await symlink(join(c.dir, 'elsewhere.safetensors'), join(c.ckpt, SHARD2));
    },
    message: (c) => new RegExp(`shard file "${re(SHARD2)}" \\(for tensor \\S+\\) is a symlink resolving to ${re(join(c.dir, 'elsewhere.safetensors'))}, outside`),
  },
  {
    name: 'shard listed in the index but missing on disk',
    fixture: 'sharded',
    build: (c) => rm(join(c.ckpt, SHARD2)),
    message: () => new RegExp(`shard file ${re(SHARD2)} is listed for \\d+ tensor\\(s\\) .* but is missing`),
  },
  {
    name: 'index without weight_map',
    fixture: 'sharded',
    build: (c) =>
      editIndex(c.ckpt, (idx) => {
        delete (idx as Record<string, unknown>)['weight_map'];
      }),
    message: (c) => new RegExp(`${re(join(c.ckpt, INDEX))}: "weight_map" is missing or not an object`),
  },
  {
    name: 'the same tensor in two shards',
    fixture: 'sharded',
    build: async (c) => {
      await addTensor(join(c.ckpt, SHARD2), 'dup', 'F32', [0]);
      await rewriteSafetensors(join(c.ckpt, SHARD2), (st) => {
        st.header['model.layers.0.input_layernorm.weight'] = { ...entry(st, 'dup'), shape: [1] };
        delete st.header['dup'];
      });
    },
    message: (c) => new RegExp(`tensor model\\.layers\\.0\\.input_layernorm\\.weight appears in two shards: ${re(join(c.ckpt, SHARD1))} and ${re(join(c.ckpt, SHARD2))}`),
  },
  {
    name: 'neither model.safetensors nor an index',
    fixture: 'bf16',
    build: (c) => rm(c.file),
    message: (c) => new RegExp(`${re(c.ckpt)}: no weights found; expected model\\.safetensors, or model\\.safetensors\\.index\\.json`),
  },
  {
    name: 'NaN and -Inf in the last layer (found while streaming)',
    fixture: 'bf16',
    build: async (c) => {
      await pokeBits(c.file, 'model.layers.2.mlp.down_proj.weight', [5, 6, 700], 0x7fc0);
      await pokeBits(c.file, 'model.layers.2.mlp.down_proj.weight', [9], 0xff80);
    },
    message: (c) => new RegExp(`${re(c.file)}: tensor model\\.layers\\.2\\.mlp\\.down_proj\\.weight contains 3 NaN and 1 ±Inf values \\(of 11008; first at flat index 5\\)`),
  },
  {
    name: 'float16 overflow with --dtype float16',
    fixture: 'sharded',
    build: (c) => pokeFloat32(join(c.ckpt, SHARD2), 'model.layers.2.mlp.up_proj.weight', 3, 70000),
    args: (c) => [c.ckpt, c.out, '--dtype', 'float16'],
    message: (c) => new RegExp(`${re(join(c.ckpt, SHARD2))}: tensor model\\.layers\\.2\\.mlp\\.up_proj\\.weight has 1 value outside the float16 range`),
  },
];

async function runCase(k: Case): Promise<void> {
  const dir = await scratch();
  const ckpt = await copyFixture(k.fixture === 'bf16' ? BF16_FIXTURE : F32_SHARDED_FIXTURE, dir);
  const c: Ctx = { dir, ckpt, out: join(dir, 'out'), file: join(ckpt, BF16_FILE) };
  await k.build?.(c);
  const before = await snapshot(dir);
  const run = await convert(k.args?.(c) ?? [c.ckpt, c.out], { cwd: k.cwd?.(c), entry: CONVERT });
  assert.equal(run.code, 1, `exit code; stderr: ${run.stderr}`);
  assert.equal(run.stdout, '');
  // Progress lines may come first (refusals found while streaming); the error is the last line.
  const last = run.stderr.trimEnd().split('\n').at(-1) ?? '';
  assert.match(last, /^error: /, run.stderr);
  assert.match(last, k.message(c));
  assert.doesNotMatch(run.stderr, /\n\s+at /, 'no stack trace');
  const outPath = k.outPath?.(c) ?? c.out;
  const added = (await leftovers(outPath)).filter((n) => !before.has(relative(dir, join(dirname(outPath), n))));
  assert.deepEqual(added, [], `nothing may be left next to ${outPath}`);
  // Input, output path, symlinks: every byte of the scratch dir as it was, nothing added.
  assert.deepEqual(await snapshot(dir), before);
}

/**
 * Each case is a separate scratch dir and process, so they can run side by side; most of a run is
 * tsx starting up, and in parallel the table fits the time budget on a 2-core machine.
 */
const PARALLEL = { concurrency: 4 };

describe('refused output paths (exit 1, both paths named, input and everything else untouched)', PARALLEL, () => {
  for (const k of outputCases) test(k.name, () => runCase(k));
});

describe('refused checkpoints (exit 1, file and tensor named, nothing written, input untouched)', PARALLEL, () => {
  for (const k of checkpointCases) test(k.name, () => runCase(k));
});

// ---- leftovers of earlier runs -----------------------------------------------------------------

describe('temp dirs of earlier runs', PARALLEL, () => {
  test('a temp dir of a live process is left alone; the conversion still succeeds', async () => {
    const dir = await scratch();
    const out = join(dir, 'out');
    const live = `${out}.tmp-${process.pid}-0badc0de`;
    await mkdir(live);
    await writeFile(join(live, 'model.json'), 'being written');
    const run = await convert([BF16_FIXTURE, out]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(await readFile(join(live, 'model.json'), 'utf8'), 'being written');
    assert.doesNotMatch(run.stderr, /stale/);
  });

  test('a dead process\'s temp dir holding files the converter never writes is left alone, with a note', async () => {
    const dir = await scratch();
    const out = join(dir, 'out');
    const pid = deadPid();
    const foreign = `${out}.tmp-${pid}-0badc0de`;
    await mkdir(foreign);
    await writeFile(join(foreign, 'notes.txt'), 'mine');
    const run = await convert([BF16_FIXTURE, out]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, new RegExp(`note: left ${re(foreign)} alone: .* holds files the converter does not write`));
    assert.equal(await readFile(join(foreign, 'notes.txt'), 'utf8'), 'mine');
  });

  test('an input named like a stale temp dir of the output is converted, never removed', async () => {
    const dir = await scratch();
    const out = join(dir, 'out');
    const ckpt = await copyFixture(BF16_FIXTURE, dir, `out.tmp-${deadPid()}-0badc0de`);
    const before = await snapshot(ckpt);
    const run = await convert([ckpt, out]);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(await snapshot(ckpt), before);
    assert.ok((await readdir(out)).includes('model.json'));
  });

  test('a symlink named like a stale temp dir is not followed', async () => {
    const dir = await scratch();
    const ckpt = await copyFixture(BF16_FIXTURE, dir);
    const out = join(dir, 'out');
    const link = `${out}.tmp-${deadPid()}-0badc0de`;
    await symlink(ckpt, link);
    const before = await snapshot(dir);
    const run = await convert([ckpt, out]);
    assert.equal(run.code, 0, run.stderr);
    const afterSnap = await snapshot(dir);
    for (const [k, v] of before) assert.equal(afterSnap.get(k), v, k);
  });

  test('an output moved aside by a killed --force run is put back, not lost', async () => {
    const dir = await scratch();
    const out = join(dir, 'out');
    const pid = deadPid();
    const old = `${out}.old-${pid}-0badc0de`;
    await mkdir(old);
    await writeFile(join(old, 'model.json'), 'previous');
    const run = await convert([BF16_FIXTURE, out]);
    assert.match(run.stderr, new RegExp(`note: restored ${re(out)} from ${re(old)}: process ${pid} had moved it aside`));
    // Put back, it is a non-empty output again: refused without --force.
    assert.equal(run.code, 1);
    assert.match(run.stderr, /exists and is not empty/);
    assert.equal(await readFile(join(out, 'model.json'), 'utf8'), 'previous');
    assert.deepEqual(await leftovers(out), ['out']);
  });
});

// ---- signals during a conversion -------------------------------------------------------------------

describe('interrupted conversions', () => {
  /** ~126 MB of f32: long enough that a conversion can be caught mid-way. */
  const BIG_CONFIG = {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: 512,
    intermediate_size: 1376,
    num_hidden_layers: 8,
    num_attention_heads: 8,
    num_key_value_heads: 4,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    vocab_size: 8000,
    max_position_embeddings: 64,
    tie_word_embeddings: false,
    hidden_act: 'silu',
  };
  const ARGS = ['--dtype', 'float16', '--shard-mb', '4'];
  let dir: string;
  let big: string;
  let ref: string;
  let bigSnapshot: Map<string, string>;

  before(async () => {
    dir = await scratch();
    big = join(dir, 'big');
    await writeRandomCheckpoint(big, BIG_CONFIG);
    bigSnapshot = await snapshot(big);
    ref = join(dir, 'ref');
    const run = await convert([big, ref, ...ARGS]);
    assert.equal(run.code, 0, run.stderr);
  });

  /**
   * Start a conversion into `out`, and once it has reported progress freeze it (SIGSTOP) so that
   * the temp dir can be seen half-written; then send `sig` and let it run again.
   */
  async function interrupt(out: string, sig: NodeJS.Signals): Promise<{ run: Run; pid: number; tmp: string }> {
    const { child, done, stderrSoFar } = startConvert([big, out, ...ARGS]);
    const deadline = Date.now() + 20_000;
    while (!/\d+\.\d%/.test(stderrSoFar())) {
      if (child.exitCode !== null || Date.now() > deadline) assert.fail(`no progress seen before the conversion ended: ${stderrSoFar()}`);
      await new Promise((r) => setTimeout(r, 5));
    }
    child.kill('SIGSTOP');
    const pid = child.pid!;
    const tmps = (await leftovers(out)).filter((n) => n.startsWith(`${basename(out)}.tmp-${pid}-`));
    assert.equal(tmps.length, 1, `one temp dir of process ${pid} while converting: ${await leftovers(out)}`);
    const tmp = join(dirname(out), tmps[0]);
    assert.ok((await readdir(tmp)).some((n) => n.endsWith('.bin')), 'shards half-written');
    child.kill(sig);
    if (sig !== 'SIGKILL') child.kill('SIGCONT');
    return { run: await done, pid, tmp };
  }

  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    test(`${sig} mid-way: exit ${128 + constants.signals[sig]}, temp dir removed, no output, input untouched`, async () => {
      const out = join(dir, `out-${sig}`);
      const { run } = await interrupt(out, sig);
      assert.equal(run.code, 128 + constants.signals[sig], run.stderr);
      assert.match(run.stderr, new RegExp(`error: interrupted by ${sig}; no output was written and no temp dir was left`));
      assert.deepEqual(await leftovers(out), []);
      assert.deepEqual(await snapshot(big), bigSnapshot);
    });
  }

  test('SIGKILL mid-way leaves the temp dir; the next run removes it, says so and writes the same bytes as an uninterrupted run', async () => {
    const out = join(dir, 'out-kill');
    const { run, pid, tmp } = await interrupt(out, 'SIGKILL');
    assert.equal(run.signal, 'SIGKILL');
    assert.deepEqual(await leftovers(out), [basename(tmp)], 'the killed run could not clean up');

    const rerun = await convert([big, out, ...ARGS]);
    assert.equal(rerun.code, 0, rerun.stderr);
    assert.match(rerun.stderr, new RegExp(`note: removed stale temp dir ${re(tmp)} left by process ${pid}\\n`));
    assert.deepEqual(await leftovers(out), [basename(out)]);
    assert.deepEqual(await snapshot(big), bigSnapshot);

    // Same files, same bytes; model.json differs only in its timestamp (and so its checksum).
    const names = (await readdir(ref)).sort();
    assert.deepEqual((await readdir(out)).sort(), names);
    assert.ok(names.length > 10, `${names.length} files`);
    for (const n of names) {
      if (n === 'model.json') continue;
      assert.equal(await sha256(join(out, n)), await sha256(join(ref, n)), n);
    }
    const json = async (d: string): Promise<Record<string, unknown>> => {
      const j = JSON.parse(await readFile(join(d, 'model.json'), 'utf8')) as Record<string, unknown>;
      delete j['convertedAt'];
      delete j['checksum']; // over the content, the timestamp included
      return j;
    };
    assert.deepEqual(await json(out), await json(ref));
  });
});
