import { ClientConfigError, isClientError } from './errors.js';
import { type Journal, type JournalEntry, openJournal } from './journal.js';
import { DEFAULT_KEY_NAMES, type DiscoveredOperation, discoverOperations } from './openapi.js';
import {
  type ClientOptions,
  count,
  positive,
  type ResolvedClientOptions,
  resolveClientOptions,
} from './options.js';
import { isReadMethod, type RetryPolicy } from './policy.js';
import { type ClientInit, type PolicySources, policyFor, prepareOperation } from './prepare.js';
import type { ClientResponse } from './response.js';
import { compileRoute } from './routes.js';
import { type Operation, type RunSettings, runOperation } from './run.js';

/** What `resume()` did with one journal entry. */
export interface ResumeResult {
  entry: JournalEntry;
  /**
   * `completed`: the server answered (any status; a replay when the first attempt had run);
   * `failed`: no answer, or one needing the caller (`error`); entries that got no answer at
   * all stay in the journal for the next `resume()`; `expired`: older than `maxAgeMs`, dropped.
   */
  status: 'completed' | 'failed' | 'expired';
  response?: ClientResponse;
  error?: unknown;
}

export interface IdempotentClient {
  /** `fetch` that keys, retries and reports as the operation's policy allows. HTTP errors are responses. */
  fetch(path: string | URL, init?: ClientInit): Promise<ClientResponse>;
  /** The policy `fetch` would apply to `method` and `path`. */
  policyFor(method: string, path: string | URL): Promise<RetryPolicy>;
  /** The OpenAPI document's operations as classified (empty without `openapi`). */
  operations(): Promise<readonly DiscoveredOperation[]>;
  /** Resends the journal's operations whose process died, with their original key and body. */
  resume(): Promise<ResumeResult[]>;
  /** The journal's entries: in flight here or elsewhere, or orphaned. */
  pending(): Promise<JournalEntry[]>;
  close(): Promise<void>;
}

interface Ready {
  sources: PolicySources;
  operations: readonly DiscoveredOperation[];
  journal: Journal | undefined;
}

/**
 * A fetch client that knows, per operation, whether a retry is safe, and retries exactly that
 * far: one key per logical operation in the carrier the server reads, the same bytes on every
 * attempt, backoff with full jitter, Retry-After, a timeout per attempt, a deadline, a retry
 * budget, and optionally a journal that outlives the process.
 * @example
 * const client = createClient({ baseUrl: 'https://api.example.com', headers: { authorization } })
 * const res = await client.fetch('/charges', { method: 'POST', json: { amount: 500 } })
 * res.idemkit // { key, attempts, replayed, … }
 */
export function createClient(options: ClientOptions = {}): IdempotentClient {
  const resolved = resolveClientOptions(options);
  const ready = prepare(resolved);
  // Surfaced by the first call that needs it; never an unhandled rejection meanwhile.
  ready.catch(() => {});

  function settingsFor(
    init: ClientInit,
    journalId?: { journal: Journal; id: string; before: number },
  ): RunSettings {
    return {
      retries: init.retries === undefined ? resolved.retries : count('retries', init.retries),
      baseDelayMs: resolved.baseDelayMs,
      maxDelayMs: resolved.maxDelayMs,
      maxRetryAfterMs: resolved.maxRetryAfterMs,
      timeoutMs: init.timeoutMs === undefined ? resolved.timeoutMs : positive('timeoutMs', init.timeoutMs),
      deadlineMs:
        init.deadlineMs === undefined ? resolved.deadlineMs : positive('deadlineMs', init.deadlineMs),
      budget: resolved.budget,
      fetch: resolved.fetch,
      random: resolved.random,
      signal: init.signal ?? undefined,
      onRetry: resolved.onRetry,
      onAttempt: journalId
        ? (attempts) => journalId.journal.attempted(journalId.id, journalId.before + attempts)
        : undefined,
    };
  }

  return {
    async fetch(path, init = {}) {
      const { sources, journal } = await ready;
      const operation = await prepareOperation(sources, path, init);
      const journaled =
        journal !== undefined &&
        init.journal !== false &&
        !isReadMethod(operation.method) &&
        operation.policy.kind !== 'unsafe';
      if (!journaled) return runOperation(operation, settingsFor(init));
      if (typeof operation.body === 'function') {
        throw new ClientConfigError(
          'a journaled operation needs its body as bytes to resend it after a crash: pass the body itself, or journal: false',
        );
      }
      const id = journal.record(operation);
      try {
        return await runOperation(operation, settingsFor(init, { journal, id, before: 0 }));
      } finally {
        // Settled here: the caller was told. Only a process that died leaves its row behind.
        journal.settle(id);
      }
    },

    async policyFor(method, path) {
      const { sources } = await ready;
      return policyFor(sources, method, path);
    },

    async operations() {
      return (await ready).operations;
    },

    async resume() {
      const { sources, journal } = await ready;
      if (!journal) throw new ClientConfigError('resume() needs createClient({ journal })');
      const results: ResumeResult[] = [];
      for (const entry of journal.adoptOrphans()) {
        if (Date.now() - entry.createdAt > journal.maxAgeMs) {
          journal.settle(entry.id);
          results.push({ entry, status: 'expired' });
          continue;
        }
        results.push(await resumeOne(journal, sources, entry));
      }
      return results;
    },

    async pending() {
      const { journal } = await ready;
      return journal ? journal.list() : [];
    },

    async close() {
      const { journal } = await ready.catch(() => ({ journal: undefined }));
      journal?.close();
    },
  };

  async function resumeOne(
    journal: Journal,
    sources: PolicySources,
    entry: JournalEntry,
  ): Promise<ResumeResult> {
    // The journal holds no credentials: this client's own headers supply them.
    const headers = new Headers(sources.headers as [string, string][]);
    for (const [name, value] of entry.headers) headers.set(name, value);
    const operation: Operation = {
      method: entry.method,
      url: entry.url,
      headers: [...headers],
      body: entry.body,
      policy: entry.policy,
      key: entry.key,
    };
    try {
      const response = await runOperation(
        operation,
        settingsFor({}, { journal, id: entry.id, before: entry.attempts }),
      );
      journal.settle(entry.id);
      return { entry, status: 'completed', response };
    } catch (error) {
      const noAnswer =
        isClientError(error) && error.response === undefined && error.code !== 'outcome-unknown';
      if (noAnswer) journal.release(entry.id);
      else journal.settle(entry.id);
      return { entry, status: 'failed', error };
    }
  }
}

async function prepare(resolved: ResolvedClientOptions): Promise<Ready> {
  const [discovery, journal] = await Promise.all([
    resolved.openapi
      ? discoverOperations(
          resolved.openapi.document,
          resolved.openapi.keyNames ?? DEFAULT_KEY_NAMES,
          resolved.fetch,
        )
      : undefined,
    resolved.journal ? openJournal(resolved.journal) : undefined,
  ]);
  return {
    sources: {
      baseUrl: resolved.baseUrl,
      headers: resolved.headers,
      routes: resolved.routes,
      discovered: discovery && {
        routes: discovery.operations.map((op) => compileRoute(op.method, op.path, op.policy)),
        basePaths: discovery.basePaths,
      },
      nonIdempotentMethods: resolved.nonIdempotentMethods,
    },
    operations: discovery?.operations ?? [],
    journal,
  };
}
