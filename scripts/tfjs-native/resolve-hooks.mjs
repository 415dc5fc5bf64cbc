// Resolve hooks used by register.mjs (runs on Node's loader thread).
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const targets = new Map();

export function initialize(data) {
  for (const [name, dir] of Object.entries(data ?? {})) {
    if (!dir) continue;
    if (!existsSync(join(dir, 'package.json'))) throw new Error(`tfjs-native: ${dir} has no package.json (set for @tensorflow/${name})`);
    // The package's "main" (dist/index.js), resolved the way require() would.
    const main = createRequire(join(dir, 'package.json')).resolve(dir);
    targets.set(`@tensorflow/${name}`, pathToFileURL(main).href);
  }
}

export async function resolve(specifier, context, next) {
  const url = targets.get(specifier);
  if (url) return { url, format: 'commonjs', shortCircuit: true };
  return next(specifier, context);
}
