/**
 * The one command-line parser of the project's entry points (cli/, scripts/, bench/,
 * weights-converter/): `node:util` parseArgs in strict mode, with its errors turned into
 * UsageErrors that name the offending argument and, for an unknown option, list the valid ones.
 * It lives in lib/ because weights-converter/ may import lib/ but not scripts/.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** Bad arguments (exit status 2 by convention). `showUsage` is false when the syntax was fine but a value does not fit. */
export class UsageError extends Error {
  override name = 'UsageError';
  constructor(
    message: string,
    readonly showUsage = true,
  ) {
    super(message);
  }
}

type OptionsConfig = NonNullable<ParseArgsConfig['options']>;

/** "--model, --ids, -h/--help": every spelling an options table accepts. */
export function optionSpellings(options: OptionsConfig): string {
  return Object.entries(options)
    .map(([name, o]) => (o.short ? `-${o.short}/--${name}` : `--${name}`))
    .join(', ');
}

/**
 * Parse `args` strictly against `options`. Unknown options, missing option values, and
 * positional arguments where none are allowed throw a UsageError; an unknown option's message
 * names it and lists the valid spellings.
 */
export function parseCommandLine<O extends OptionsConfig, P extends boolean = false>(
  args: readonly string[],
  options: O,
  allowPositionals?: P,
): ReturnType<typeof parseArgs<{ args: string[]; options: O; allowPositionals: P; strict: true }>> {
  try {
    return parseArgs({ args: [...args], options, allowPositionals: (allowPositionals ?? false) as P, strict: true as const });
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    if (typeof code !== 'string' || !code.startsWith('ERR_PARSE_ARGS')) throw e;
    const message = (e as Error).message;
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      const name = /'([^']*)'/.exec(message)?.[1] ?? message;
      const valid = Object.keys(options).length ? `valid options: ${optionSpellings(options)}` : 'this command takes no options';
      throw new UsageError(`unknown option ${name}; ${valid}`);
    }
    throw new UsageError(message);
  }
}

/**
 * `parseCommandLine` for the top level of a script: a UsageError is printed as `error: <message>`
 * (then `usage`, when given) instead of a stack trace, and the process exits with status 2.
 */
export function parseScriptCommandLine<O extends OptionsConfig, P extends boolean = false>(
  args: readonly string[],
  options: O,
  allowPositionals?: P,
  usage?: string,
): ReturnType<typeof parseCommandLine<O, P>> {
  try {
    return parseCommandLine(args, options, allowPositionals);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`error: ${e.message}\n${usage ? `${usage}\n` : ''}`);
    process.exit(2);
  }
}
