/**
 * The run folder a notebook's outputs go to (null: the model's scratch folder). Its own module
 * so that params.ts can reset it without importing state.ts, which reads the params.
 */
let run: string | null = null;

/** The run folder outputs go to from now on (null: the model's scratch folder). */
export function setRunDir(dir: string | null): void {
  run = dir;
}

export function currentRunDir(): string | null {
  return run;
}
