/**
 * The notebooks' door to the project's lib. Every notebook's first cell does
 *
 *   import { loadRsn } from "./rsn";
 *   const rsn = await loadRsn("00-data-and-filtering");
 *
 * and gets lib/notebook/index.ts: notebook helpers plus the whole lib, fully typed.
 *
 * Why this way: tslab compiles cells (and this file) itself, with TypeScript 5.0 to CommonJS and
 * rootDir = this folder, so it cannot compile the lib (ESM, `.ts` specifiers, import.meta). The
 * lib therefore runs as what it is — ESM TypeScript through tsx's loader, the same code the tests
 * and scripts run, no build — and tslab sees only its generated declarations
 * (.cache/jupyter/types, made by `npm run lab` / the headless runner / scripts/jupyter-setup.ts).
 * The lib is loaded once per kernel; restart the kernel after editing lib/.
 */
import type * as Lib from "../.cache/jupyter/types/lib/notebook/index";

/** The lib's types, for annotations in cells: `import { loadRsn, type KnownFacts } from "./rsn"`. */
export type * from "../.cache/jupyter/types/lib/notebook/index";
export type Rsn = typeof Lib;

// tslab turns `import()` into `require()`; a Function body keeps a real dynamic import, whose
// specifiers resolve from this module (so "tsx/esm/api" is the project's tsx).
const dynamicImport = new Function("specifier", "return import(specifier)") as (specifier: string) => Promise<unknown>;

interface TsxEsmApi {
  register: () => unknown;
}

const state = globalThis as typeof globalThis & { __rsnLib__?: Promise<Rsn> };

async function importLib(): Promise<Rsn> {
  const tsx = (await dynamicImport("tsx/esm/api")) as TsxEsmApi;
  tsx.register();
  const { pathToFileURL } = require("url") as typeof import("url");
  const { join } = require("path") as typeof import("path");
  const lib = (await dynamicImport(pathToFileURL(join(__dirname, "..", "lib", "notebook", "index.ts")).href)) as Rsn;
  // Keep the types in step with lib/ for the next cells (a no-op when they are current).
  const types = (await dynamicImport(pathToFileURL(join(__dirname, "..", "lib", "notebook", "types.ts")).href)) as {
    ensureNotebookTypes: (o: { log: (l: string) => void }) => Promise<unknown>;
  };
  await types.ensureNotebookTypes({ log: (l) => console.log(l) });
  return lib;
}

/** Load the lib (once per kernel) and start notebook `name` (its .ipynb file name without extension). */
export async function loadRsn(name: string): Promise<Rsn> {
  state.__rsnLib__ ??= importLib().catch((e) => {
    state.__rsnLib__ = undefined;
    throw e;
  });
  const lib = await state.__rsnLib__;
  lib.notebookInit(name);
  return lib;
}
