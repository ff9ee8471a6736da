import { hash, timingSafeEqual } from 'node:crypto';

/** Checks admin bearer tokens in constant time and names the actor (DESIGN §5). */
export class AdminAuth {
  readonly #digests: ReadonlyArray<{ name: string; digest: Buffer }>;

  /** `tokens`: name → token. */
  constructor(tokens: ReadonlyMap<string, string>) {
    this.#digests = [...tokens].map(([name, token]) => ({ name, digest: sha256(token) }));
  }

  /** The actor name of a valid admin token, or undefined. Compares digests so length leaks nothing. */
  actorFor(token: string): string | undefined {
    const d = sha256(token);
    let found: string | undefined;
    for (const t of this.#digests) if (timingSafeEqual(d, t.digest)) found ??= t.name;
    return found;
  }
}

const sha256 = (s: string): Buffer => hash('sha256', s, 'buffer');
