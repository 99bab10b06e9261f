import { type OutgoingHttpHeader, type OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { ExecuteDecision } from '../core/execution.js';
import { type EngineResponse, isNullBodyStatus } from '../core/response.js';
import { clearHeaders, sendEngineResponse } from './node-http.js';

type Callback = (error?: Error | null) => void;
type WriteHeadHeaders = OutgoingHttpHeaders | OutgoingHttpHeader[] | readonly [string, string][];

/** Headers that describe one connection's framing: the engine's answer sets its own. */
const FRAMING = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive']);

/**
 * Captures what a handler writes to a ServerResponse while its execution runs — `setHeader`,
 * `writeHead` (a record, `[name, value]` pairs or a flat list), `write`, `end`, and so
 * `res.send`/`res.json`/`pipe`/`sendFile`, which all come down to those — and sends nothing until
 * `commit()` has persisted it. Then the answer goes out as the engine returns it (the handler's
 * response marked `Idempotent-Replayed: false`, or a `lease-lost` problem).
 *
 * A body larger than `maxStoredBytes` is not held whole: once it passes the limit the status and
 * headers are committed without it (replays answer `result-unavailable`) and the rest streams
 * through. A response destroyed before it ended (a piped stream that failed) aborts the
 * execution, which releases the key or marks it uncertain after `effectsStarted()`.
 *
 * How the response's methods are routed here until the answer is decided: see
 * {@link routesThroughPrototype}. Call `fail(error)` when the handler threw before it answered.
 */
export function captureResponse(
  res: ServerResponse,
  decision: ExecuteDecision,
  maxStoredBytes: number,
): ResponseCapture {
  return new ResponseCapture(res, decision, maxStoredBytes);
}

const METHODS = ['writeHead', 'write', 'end', 'flushHeaders', 'destroy'] as const;
type Method = (typeof METHODS)[number];

/**
 * Every capture, by its response: one WeakMap entry per executed request serves both the
 * patched prototype's routing (see routesThroughPrototype) and adapters that look a capture up
 * later (Express's error handler and `req.idempotency`).
 */
const CAPTURES = new WeakMap<ServerResponse, ResponseCapture>();

/** The capture of a response under a claim (it stays after the answer is sent), if any. */
export function captureOf(res: ServerResponse): ResponseCapture | undefined {
  return CAPTURES.get(res);
}

/** Prototypes whose METHODS consult CAPTURES. Never Node's own `ServerResponse.prototype`. */
const PATCHED = new WeakSet<object>();

/**
 * Whether this response's methods can be routed to its capture through its prototype, patched
 * once, instead of through own properties set on the response. Express gives each response (and
 * request) a hidden class of its own (it swaps their prototypes), so every property added to one
 * copies that class: five overrides, put back afterwards, cost tens of µs per request in copies
 * and garbage. A patched prototype and a WeakMap entry cost none of that. Only a framework's own
 * response prototype is patched (Express's `app.response`), never Node's, and its methods behave
 * exactly as before for every response that is not held. A response with own overrides already
 * (compression middleware patches `write`/`end` per response) keeps the own-property route, which
 * wraps them.
 */
function routesThroughPrototype(res: ServerResponse): boolean {
  const proto = Object.getPrototypeOf(res) as Record<Method, unknown> | null;
  if (proto === null || proto === ServerResponse.prototype) return false;
  for (let i = 0; i < METHODS.length; i++) if (Object.hasOwn(res, METHODS[i] as Method)) return false;
  if (!PATCHED.has(proto)) patchPrototype(proto);
  return true;
}

function patchPrototype(proto: Record<Method, unknown>): void {
  PATCHED.add(proto);
  for (const name of METHODS) {
    const inherited = proto[name] as (this: ServerResponse, ...args: unknown[]) => unknown;
    Object.defineProperty(proto, name, {
      configurable: true,
      enumerable: false,
      writable: true,
      value: function routedWhileHeld(this: ServerResponse) {
        // `arguments` passes the call on exactly as it came (its count included, which Node's
        // methods read); a rest parameter would copy it into an array on every call.
        // biome-ignore lint/complexity/noArguments: see above
        const args = arguments as unknown as unknown[];
        const capture = CAPTURES.get(this);
        if (capture === undefined || !capture.routedHere) return inherited.apply(this, args);
        return (capture[name] as (...a: unknown[]) => unknown).apply(capture, args);
      },
    });
  }
}

export class ResponseCapture {
  private readonly res: ServerResponse;
  private readonly decision: ExecuteDecision;
  private readonly maxStoredBytes: number;
  private readonly chunks: Uint8Array[] = [];
  private size = 0;
  /**
   * capturing: nothing sent · streaming: status and headers are being committed, the body passed
   * the limit · passing: committed, the body goes straight to Node · done: the answer is decided.
   */
  private state: 'capturing' | 'streaming' | 'passing' | 'done' = 'capturing';
  /** `end()` called while the streaming commit was in flight. */
  private pendingEnd: { done: Callback | undefined } | undefined;
  /**
   * What was in effect before, per METHODS: an own property (compression middleware patches per
   * response) or the prototype's. Put back by assignment, never `delete`: deleting a property
   * turns an Express response (whose prototype Express swapped) into a slow dictionary object
   * for the rest of its life.
   */
  private readonly saved: unknown[] | undefined;
  /**
   * True while the response's methods reach this capture through its patched prototype; false
   * once restored, and always for the own-property route (where the saved methods may call the
   * prototype's, which must then behave as Node's).
   */
  routedHere = false;

  constructor(res: ServerResponse, decision: ExecuteDecision, maxStoredBytes: number) {
    this.res = res;
    this.decision = decision;
    this.maxStoredBytes = maxStoredBytes;
    CAPTURES.set(res, this);
    if (routesThroughPrototype(res)) {
      this.saved = undefined;
      this.routedHere = true;
    } else {
      const own = res as unknown as Record<Method, unknown>;
      this.saved = [own.writeHead, own.write, own.end, own.flushHeaders, own.destroy];
      own.writeHead = this.writeHead.bind(this);
      own.write = this.write.bind(this);
      own.end = this.end.bind(this);
      own.flushHeaders = noop;
      own.destroy = this.destroy.bind(this);
    }
    res.on('unpipe', this.onUnpipe);
  }

  /**
   * True while what the handler writes is held rather than sent (the socket's state does not
   * matter yet). Frameworks that check writability before writing (Koa) read it.
   */
  get holding(): boolean {
    return this.state === 'capturing' || this.state === 'streaming';
  }

  /** The handler threw (or rejected) before it answered: end the execution with a problem. */
  async fail(error: unknown): Promise<void> {
    if (this.state === 'streaming' || this.state === 'passing') {
      // The status line is committed and the body is on its way: the answer cannot change now.
      this.state = 'done';
      this.restore();
      this.res.destroy(asError(error));
      return;
    }
    if (this.state === 'done') return;
    this.state = 'done';
    const result = await this.decision.abort(error);
    this.sendInstead(result.response);
  }

  /**
   * A `.pipe()` into the response stops when the client goes away (the source unpipes on the
   * response's `close`) and never ends it, unlike `pipeline()`, whose writes still arrive. With
   * the body cut short and nothing left to end it, the execution ends here, as for a destroy.
   */
  private readonly onUnpipe = (): void => {
    if (this.state !== 'capturing' || !this.res.destroyed) return;
    this.state = 'done';
    this.restore();
    void this.decision.abort(new Error('the client went away while a piped body was being captured'));
  };

  private restore(): void {
    this.res.removeListener('unpipe', this.onUnpipe);
    const saved = this.saved;
    if (saved === undefined) {
      this.routedHere = false;
      return;
    }
    const own = this.res as unknown as Record<Method, unknown>;
    for (let i = 0; i < METHODS.length; i++) own[METHODS[i] as Method] = saved[i];
  }

  /** Sends an engine answer in place of what the handler wrote; its later writes go nowhere. */
  private sendInstead(response: EngineResponse): void {
    this.restore();
    const res = this.res;
    if (res.destroyed) return;
    clearHeaders(res);
    sendEngineResponse(res, response);
    // A handler still writing must not hit "write after end" (an unhandled 'error' on res).
    const own = res as unknown as Record<string, unknown>;
    own.write = swallow;
    own.end = swallowEnd;
  }

  /** What `res.writeHead` does while the response is held (the same for write, end, destroy). */
  writeHead(status: number, reason?: string | WriteHeadHeaders, headers?: WriteHeadHeaders): ServerResponse {
    const res = this.res;
    res.statusCode = status;
    let fields = headers;
    if (typeof reason === 'string') res.statusMessage = reason;
    else fields = reason;
    if (Array.isArray(fields)) applyHeaderList(res, fields);
    else if (fields)
      for (const name in fields) setIfDefined(res, name, (fields as OutgoingHttpHeaders)[name]);
    return res;
  }

  write(chunk: unknown, encoding?: unknown, callback?: unknown): boolean {
    const done = (typeof encoding === 'function' ? encoding : callback) as Callback | undefined;
    if (this.state !== 'done') this.hold(chunk, encoding);
    if (done) process.nextTick(done);
    if (this.state === 'capturing' && this.size > this.maxStoredBytes) this.startStreaming();
    return true;
  }

  end(chunk?: unknown, encoding?: unknown, callback?: unknown): ServerResponse {
    const done = (
      typeof chunk === 'function' ? chunk : typeof encoding === 'function' ? encoding : callback
    ) as Callback | undefined;
    if (this.state === 'done') {
      if (done) process.nextTick(done);
      return this.res;
    }
    if (chunk !== undefined && chunk !== null && typeof chunk !== 'function') this.hold(chunk, encoding);
    if (this.state === 'streaming') this.pendingEnd = { done };
    else void this.commitWhole(done);
    return this.res;
  }

  /** A response destroyed before it ended (a failed pipe): the execution must end here too. */
  destroy(error?: Error): ServerResponse {
    const before = this.state;
    this.state = 'done';
    this.restore();
    if (before === 'capturing') {
      void this.decision.abort(error ?? new Error('the response was destroyed before it ended'));
    }
    return this.res.destroy(error);
  }

  /** Held: nothing is sent before the commit. */
  flushHeaders(): void {}

  /** The handler's context under this claim (Express's `req.idempotency` reads it). */
  get context(): ExecuteDecision['ctx'] {
    return this.decision.ctx;
  }

  private hold(chunk: unknown, encoding: unknown): void {
    const bytes =
      typeof chunk === 'string'
        ? Buffer.from(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8')
        : chunk instanceof Uint8Array
          ? chunk
          : undefined;
    if (bytes === undefined || bytes.byteLength === 0) return;
    this.chunks.push(bytes);
    this.size += bytes.byteLength;
  }

  private captured(bodyOmitted: boolean): EngineResponse {
    const res = this.res;
    const response: EngineResponse = { status: res.statusCode, headers: headerLinesOf(res), body: EMPTY };
    if (bodyOmitted) response.bodyOmitted = true;
    else
      response.body =
        this.chunks.length === 1 ? (this.chunks[0] as Uint8Array) : Buffer.concat(this.chunks, this.size);
    return response;
  }

  private async commitWhole(done: Callback | undefined): Promise<void> {
    this.state = 'done';
    try {
      const captured = this.captured(false);
      const result = await this.decision.commit(captured);
      this.restore();
      const res = this.res;
      if (res.destroyed) return;
      const answer = result.response;
      if (answer.body === captured.body && answer.status === captured.status) {
        // The handler's own answer (the engine only marked it): its headers are still on `res`,
        // so add the marker and send, instead of clearing and setting every header again.
        res.setHeader('idempotent-replayed', 'false');
        if (!isNullBodyStatus(answer.status) && !res.hasHeader('transfer-encoding'))
          res.setHeader('content-length', answer.body.byteLength);
        res.end(answer.body);
      } else {
        clearHeaders(res);
        sendEngineResponse(res, answer);
      }
      if (done) res.once('finish', () => done());
    } catch (error) {
      this.restore();
      this.res.destroy(asError(error));
    }
  }

  /**
   * Past `maxStoredBytes`: commit status and headers now, without the body, then let the body
   * through. Writes are held while the commit is in flight and flushed in order once it returns.
   */
  private startStreaming(): void {
    this.state = 'streaming';
    this.decision.commit(this.captured(true)).then(
      (result) => {
        if (this.state === 'done') return;
        if (result.disposition === 'lease-lost' || result.response.status !== this.res.statusCode) {
          this.state = 'done';
          this.sendInstead(result.response);
          return;
        }
        this.state = 'passing';
        this.restore();
        const res = this.res;
        res.setHeader('idempotent-replayed', 'false');
        for (const chunk of this.chunks) res.write(chunk);
        this.chunks.length = 0;
        if (this.pendingEnd) res.end(this.pendingEnd.done);
      },
      (error: unknown) => {
        this.state = 'done';
        this.restore();
        this.res.destroy(asError(error));
      },
    );
  }
}

const EMPTY = new Uint8Array(0);

function noop(): void {}

function swallow(_chunk?: unknown, encoding?: unknown, callback?: unknown): boolean {
  const done = typeof encoding === 'function' ? encoding : callback;
  if (typeof done === 'function') process.nextTick(done as Callback);
  return true;
}

function swallowEnd(
  this: ServerResponse,
  chunk?: unknown,
  encoding?: unknown,
  callback?: unknown,
): ServerResponse {
  const done = typeof chunk === 'function' ? chunk : typeof encoding === 'function' ? encoding : callback;
  if (typeof done === 'function') process.nextTick(done as Callback);
  return this;
}

/**
 * The headers set on `res` as the engine's lines; arrays (set-cookie) become one line each. By
 * name and `getHeader`, not `getHeaders()`: that builds a dictionary-mode copy of every header on
 * every captured response, only to be walked once.
 */
export function headerLinesOf(res: ServerResponse): [string, string][] {
  const lines: [string, string][] = [];
  const names = res.getHeaderNames();
  for (let i = 0; i < names.length; i++) {
    const name = names[i] as string;
    if (FRAMING.has(name)) continue;
    const value = res.getHeader(name);
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) lines.push([name, String(v)]);
    else lines.push([name, String(value)]);
  }
  return lines;
}

/** `writeHead` with a list: names in it replace earlier values, repeats within it are kept. */
function applyHeaderList(res: ServerResponse, list: readonly unknown[]): void {
  const pairs: [string, string][] = [];
  if (Array.isArray(list[0]))
    for (const pair of list as [string, string][]) pairs.push([pair[0], String(pair[1])]);
  else for (let i = 0; i + 1 < list.length; i += 2) pairs.push([String(list[i]), String(list[i + 1])]);
  for (const [name] of pairs) res.removeHeader(name);
  for (const [name, value] of pairs) res.appendHeader(name, value);
}

function setIfDefined(res: ServerResponse, name: string, value: OutgoingHttpHeader | undefined): void {
  if (value !== undefined) res.setHeader(name, value);
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
