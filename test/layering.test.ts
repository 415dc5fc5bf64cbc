/**
 * Imports point down: lib/ is the library and imports none of the programs built on it
 * (weights-converter/, scripts/, test/, cli/, bench/); the converter imports neither scripts/ nor
 * test/; scripts/ do not import test/. Every import form counts (static, `export … from`,
 * `import type`, dynamic `import()`, `import x = require()`, `typeof import()` types), found in
 * the TypeScript syntax tree so that comments and strings that merely mention a path do not.
 * Inside lib/ the imports form no circle; lib/model (the single-threaded runner) imports
 * nothing of the layers built on it (lib/exec, lib/method, lib/runs, lib/notebook), and the
 * method (lib/method) nothing of the execution (lib/exec), the orchestration (lib/runs) or the notebooks.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Top-level folder → the top-level folders its files must not import. */
const FORBIDDEN: Readonly<Record<string, readonly string[]>> = {
  lib: ['weights-converter', 'scripts', 'test', 'cli', 'bench'],
  'weights-converter': ['scripts', 'test'],
  scripts: ['test'],
};

interface ImportSite {
  specifier: string;
  line: number;
}

/** Every module specifier `text` imports or re-exports, with its 1-based line. */
function importsOf(fileName: string, text: string): ImportSite[] {
  const sf = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const out: ImportSite[] = [];
  const add = (node: ts.Node | undefined): void => {
    if (node && (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node))) {
      out.push({ specifier: node.text, line: sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1 });
    }
  };
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) add(node.moduleSpecifier);
    else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) add(node.moduleReference.expression);
    else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) add(node.arguments[0]);
    else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) add(node.argument.literal);
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

/** Every .ts file under `dir` (node_modules and dot-folders skipped). */
function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name === 'node_modules' || e.name.startsWith('.')) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...tsFiles(p));
    else if (e.name.endsWith('.ts')) out.push(p);
  }
  return out;
}

/** "file:line imports 'spec' (resolves into folder/)" for every import that breaks FORBIDDEN, under `root`. */
function layeringViolations(root: string): string[] {
  const found: string[] = [];
  for (const [from, banned] of Object.entries(FORBIDDEN)) {
    let files: string[];
    try {
      files = tsFiles(join(root, from));
    } catch {
      continue; // folder absent
    }
    for (const file of files) {
      for (const { specifier, line } of importsOf(file, readFileSync(file, 'utf8'))) {
        // Only relative specifiers can reach another folder of this repository.
        if (!specifier.startsWith('./') && !specifier.startsWith('../')) continue;
        const target = relative(root, resolve(dirname(file), specifier));
        const top = target.split(sep)[0]!;
        if (banned.includes(top)) found.push(`${relative(root, file)}:${line} imports '${specifier}' (resolves into ${top}/)`);
      }
    }
  }
  return found.sort();
}

test('the repository keeps its import direction', () => {
  for (const dir of Object.keys(FORBIDDEN)) assert.ok(tsFiles(join(ROOT, dir)).length > 0, `${dir}/ has .ts files to check`);
  assert.deepEqual(layeringViolations(ROOT), []);
});

test('the checker finds every import form and ignores mere mentions', () => {
  const root = mkdtempSync(join(tmpdir(), 'rsn-layering-'));
  try {
    const put = (path: string, text: string): void => {
      mkdirSync(dirname(join(root, path)), { recursive: true });
      writeFileSync(join(root, path), text);
    };
    put(
      'lib/deep/bad.ts',
      [
        "import { a } from '../../scripts/a.ts';",
        "import type { B } from '../../weights-converter/b.ts';",
        "export { c } from '../../cli/c.ts';",
        "export * from '../../bench/d.ts';",
        "const e = await import('../../test/e.ts');",
        'const f = await import(`../../scripts/f.ts`);',
        "import g = require('../../bench/g.ts');",
        "type H = typeof import('../../test/h.ts');",
        "import '../../scripts/side-effect.ts';",
        // Allowed or not an import at all:
        "import { ok } from '../other.ts';",
        "import { pkg } from 'scripts';",
        "// import { x } from '../../scripts/x.ts';",
        "const s = \"import('../../scripts/s.ts')\";",
        "const dir = join(root, '../../scripts');",
        "const tricky = import('./../../lib/fine.ts');",
      ].join('\n'),
    );
    put('weights-converter/w.ts', "import { t } from '../test/helpers/t.ts';\nimport { l } from '../lib/l.ts';\n");
    put('scripts/s.ts', "import { t } from '../test/t.ts';\nimport { b } from '../bench/shared.ts';\n");
    put('cli/c.ts', "import { t } from '../test/t.ts';\n");
    assert.deepEqual(layeringViolations(root), [
      "lib/deep/bad.ts:1 imports '../../scripts/a.ts' (resolves into scripts/)",
      "lib/deep/bad.ts:2 imports '../../weights-converter/b.ts' (resolves into weights-converter/)",
      "lib/deep/bad.ts:3 imports '../../cli/c.ts' (resolves into cli/)",
      "lib/deep/bad.ts:4 imports '../../bench/d.ts' (resolves into bench/)",
      "lib/deep/bad.ts:5 imports '../../test/e.ts' (resolves into test/)",
      "lib/deep/bad.ts:6 imports '../../scripts/f.ts' (resolves into scripts/)",
      "lib/deep/bad.ts:7 imports '../../bench/g.ts' (resolves into bench/)",
      "lib/deep/bad.ts:8 imports '../../test/h.ts' (resolves into test/)",
      "lib/deep/bad.ts:9 imports '../../scripts/side-effect.ts' (resolves into scripts/)",
      "scripts/s.ts:1 imports '../test/t.ts' (resolves into test/)",
      "weights-converter/w.ts:1 imports '../test/helpers/t.ts' (resolves into test/)",
    ]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

/** lib/ folder → the lib/ folders its files must not import. */
const LIB_FORBIDDEN: Readonly<Record<string, readonly string[]>> = {
  'lib/model': ['lib/exec', 'lib/method', 'lib/runs', 'lib/notebook'],
  // The paper's method runs on any ModelRunner and knows nothing of how or where work is executed.
  'lib/method': ['lib/exec', 'lib/runs', 'lib/notebook'],
  'lib/exec': ['lib/method', 'lib/runs', 'lib/notebook'],
};

/** The relative-import graph of the .ts files under root/lib: file → files it imports (paths from root). */
function libImportGraph(root: string): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of tsFiles(join(root, 'lib'))) {
    const targets = importsOf(file, readFileSync(file, 'utf8'))
      .filter(({ specifier }) => specifier.startsWith('./') || specifier.startsWith('../'))
      .map(({ specifier }) => relative(root, resolve(dirname(file), specifier)).split(sep).join('/'));
    graph.set(relative(root, file).split(sep).join('/'), [...new Set(targets)]);
  }
  return graph;
}

/** Every import circle (each once, as "a → b → … → a", starting from its smallest file). */
function importCycles(graph: Map<string, string[]>): string[] {
  const cycles = new Set<string>();
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (file: string): void => {
    state.set(file, 'open');
    path.push(file);
    for (const next of graph.get(file) ?? []) {
      if (!graph.has(next)) continue;
      if (state.get(next) === 'open') {
        const loop = path.slice(path.indexOf(next));
        const first = loop.indexOf([...loop].sort()[0]!);
        const rotated = [...loop.slice(first), ...loop.slice(0, first)];
        cycles.add([...rotated, rotated[0]].join(' → '));
      } else if (!state.has(next)) visit(next);
    }
    path.pop();
    state.set(file, 'done');
  };
  for (const file of [...graph.keys()].sort()) if (!state.has(file)) visit(file);
  return [...cycles].sort();
}

function libLayerViolations(graph: Map<string, string[]>): string[] {
  const found: string[] = [];
  for (const [file, targets] of graph) {
    for (const [from, banned] of Object.entries(LIB_FORBIDDEN)) {
      if (!file.startsWith(from + '/')) continue;
      for (const t of targets) if (banned.some((b) => t.startsWith(b + '/'))) found.push(`${file} imports ${t}`);
    }
  }
  return found.sort();
}

test('lib/ has no import circle; lib/model, lib/method and lib/exec import none of the layers above them', () => {
  const graph = libImportGraph(ROOT);
  assert.ok(graph.size > 50, 'lib/ has its .ts files');
  assert.deepEqual(importCycles(graph), []);
  assert.deepEqual(libLayerViolations(graph), []);
});

test('the circle check names every circle, type-only and re-export imports included', () => {
  const root = mkdtempSync(join(tmpdir(), 'rsn-cycles-'));
  try {
    const put = (path: string, text: string): void => {
      mkdirSync(dirname(join(root, path)), { recursive: true });
      writeFileSync(join(root, path), text);
    };
    put('lib/model/a.ts', "import type { B } from './b.ts';\n");
    put('lib/model/b.ts', "export { C } from '../exec/c.ts';\n");
    put('lib/exec/c.ts', "import { A } from '../model/a.ts';\n");
    put('lib/x.ts', "import { y } from './y.ts';\n// import { z } from './x.ts';\n");
    put('lib/y.ts', "import { x } from './x.ts';\nimport { ext } from 'piscina';\n");
    put('lib/z.ts', "import { x } from './x.ts';\n");
    const graph = libImportGraph(root);
    assert.deepEqual(importCycles(graph), ['lib/exec/c.ts → lib/model/a.ts → lib/model/b.ts → lib/exec/c.ts', 'lib/x.ts → lib/y.ts → lib/x.ts']);
    assert.deepEqual(libLayerViolations(graph), ['lib/model/b.ts imports lib/exec/c.ts']);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
