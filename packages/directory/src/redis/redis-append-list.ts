import { RedisConnection, type RedisConnectionOptions } from './redis-connection.ts';

/**
 * An append-only list of strings in Redis, for small control-plane data every node shares (the
 * schema fan-out's migration list). Appends are conditional on the length the caller read, in one
 * script: two writers cannot interleave, and the loser re-reads and decides again. Calls are
 * bounded like the directory's (DIRECTORY_UNAVAILABLE past `timeoutMs`).
 */
export class RedisAppendList {
  readonly #conn: RedisConnection;
  readonly #key: string;

  constructor(opts: RedisConnectionOptions, name: string) {
    this.#conn = new RedisConnection(opts);
    this.#key = this.#conn.keys.list(name);
  }

  /** Every item, in order. */
  async read(): Promise<string[]> {
    return this.#conn.call('list', (r) => r.lrange(this.#key, 0, -1));
  }

  /** Appends `items` only if the list still has `expectedLength` items; false otherwise (nothing appended). */
  async appendIfLength(expectedLength: number, items: readonly string[]): Promise<boolean> {
    if (items.length === 0) return (await this.read()).length === expectedLength;
    const n = await this.#conn.call('list', (r) => r.domicileAppendIfLength(this.#key, String(expectedLength), ...items));
    return n >= 0;
  }

  async close(): Promise<void> {
    await this.#conn.close();
  }
}
