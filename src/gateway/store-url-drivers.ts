import { ConfigError } from './config-error.js';

/** `import()` by name; tests replace it to play a machine where a driver is not installed. */
export type ImportModule = (name: string) => Promise<unknown>;

export const defaultImport: ImportModule = (name) => import(name);

/**
 * Imports the first installed package of `names`. Drivers are optional peers, so they are loaded
 * only for the store URL that needs them, and a missing one becomes an "npm install" message.
 * @param purpose what needs the driver, for the message: `postgres://`
 */
export async function loadDriver(
  names: readonly string[],
  purpose: string,
  importModule: ImportModule = defaultImport,
): Promise<{ name: string; module: unknown }> {
  for (const name of names) {
    try {
      return { name, module: await importModule(name) };
    } catch (error) {
      if (!isNotFound(error, name)) {
        throw new ConfigError(`${purpose} needs ${name}, which failed to load: ${(error as Error).message}`, {
          cause: error,
        });
      }
    }
  }
  const [first, ...others] = names;
  const alternatives = others.length > 0 ? ` (or ${others.join(', or ')})` : '';
  throw new ConfigError(`${purpose} needs the ${first} package: npm install ${first}${alternatives}`);
}

function isNotFound(error: unknown, name: string): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const message = error instanceof Error ? error.message : '';
  // A driver that is present but misses one of its own dependencies is not "not installed".
  return (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') && message.includes(`'${name}'`);
}

/** An ESM import of a CommonJS package puts `module.exports` on `default`. */
export function exportsOf<T>(module: unknown): T {
  const m = module as { default?: unknown };
  return (m.default !== undefined && typeof m.default === 'object' ? m.default : m) as T;
}
