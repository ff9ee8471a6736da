/**
 * Request loggers made on first use. fastify gives every request a pino child
 * (its request id) and the data plane adds one (its tenant): two child
 * loggers per request, each serializing its bindings, about a tenth of the
 * main thread's time per small write. Most requests never log (access logs
 * are off), so the child is made only when a line at an enabled level is
 * written; the line is exactly what the eager child would have written.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { Bindings, ChildLoggerOptions, LogFn } from 'pino';

type Level = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';

/** The part of a pino logger this needs beyond FastifyBaseLogger. */
type Parent = FastifyBaseLogger & { isLevelEnabled?(level: string): boolean };

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;

/** The level methods, defined on the prototype by the class's static block. */
export interface LazyChildLogger extends Pick<FastifyBaseLogger, Level | 'silent'> {}

export class LazyChildLogger implements FastifyBaseLogger {
  readonly #parent: Parent;
  readonly #bindings: Bindings;
  readonly #opts: ChildLoggerOptions | undefined;
  #child: FastifyBaseLogger | undefined;

  constructor(parent: FastifyBaseLogger, bindings: Bindings, opts?: ChildLoggerOptions) {
    this.#parent = parent;
    this.#bindings = bindings;
    // An empty level means "inherit" (fastify passes {} when a route sets none).
    this.#opts = opts && Object.keys(opts).length > 0 ? opts : undefined;
  }

  /** Whether a line at `level` would be written; the child is not made for it. */
  isLevelEnabled(level: Level): boolean {
    if (this.#child) return (this.#child as Parent).isLevelEnabled?.(level) ?? true;
    if (this.#opts?.level !== undefined) return true; // a level of its own: let the real child decide
    return this.#parent.isLevelEnabled?.(level) ?? true;
  }

  get level(): string {
    return this.#child?.level ?? this.#opts?.level ?? this.#parent.level;
  }

  set level(level: string) {
    this.#real().level = level;
  }

  // The level methods live on the prototype, made once (see the static block below): as
  // arrow-function fields they were made (and, under tsx, named) for every request, twice.

  child(bindings: Bindings, opts?: ChildLoggerOptions): FastifyBaseLogger {
    return new LazyChildLogger(this, bindings, opts);
  }

  #log(level: Level, args: Parameters<LogFn>): void {
    if (!this.isLevelEnabled(level)) return;
    (this.#real()[level] as (...a: unknown[]) => void)(...args);
  }

  static {
    for (const level of LEVELS) {
      Object.defineProperty(LazyChildLogger.prototype, level, {
        value: { [level](this: LazyChildLogger, ...args: Parameters<LogFn>) { this.#log(level, args); } }[level],
        writable: true, configurable: true,
      });
    }
    Object.defineProperty(LazyChildLogger.prototype, 'silent', { value: function silent() {}, writable: true, configurable: true });
  }

  /** The pino child, made now; a lazy parent is made real first (its child() would be lazy again). */
  #real(): FastifyBaseLogger {
    if (this.#child) return this.#child;
    const parent = this.#parent instanceof LazyChildLogger ? this.#parent.#real() : this.#parent;
    this.#child = this.#opts ? parent.child(this.#bindings, this.#opts) : parent.child(this.#bindings);
    return this.#child;
  }
}

/** fastify's `childLoggerFactory`: the request logger, made on first use. */
export function lazyChildLoggerFactory(logger: FastifyBaseLogger, bindings: Bindings, opts: ChildLoggerOptions): FastifyBaseLogger {
  return new LazyChildLogger(logger, bindings, opts);
}
