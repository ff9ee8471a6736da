import type { OutStream } from './io.ts';
import { bytes } from './format.ts';

/** What one progress line shows. */
export interface Progress {
  /** Phase name, e.g. `copying`. */
  label: string;
  done: number;
  /** 0 or unknown: no percentage. */
  total: number;
  /** How `done` and `total` are printed; default: as bytes. */
  format?: (n: number) => string;
}

const WIDTH = 30;

/**
 * A one-line progress bar redrawn in place on a terminal (`\r`, clear to end
 * of line). Small enough not to need a dependency; only used when the stream is a TTY.
 */
export class ProgressBar {
  readonly #out: OutStream;
  #drawn = false;

  constructor(out: OutStream) {
    this.#out = out;
  }

  /** Redraw with new figures. */
  update(p: Progress): void {
    const frac = p.total > 0 ? Math.min(1, Math.max(0, p.done / p.total)) : 0;
    const filled = Math.round(frac * WIDTH);
    const bar = p.total > 0 ? `[${'#'.repeat(filled)}${'-'.repeat(WIDTH - filled)}] ${String(Math.floor(frac * 100)).padStart(3)}%` : `[${' '.repeat(WIDTH)}]     `;
    const fmt = p.format ?? bytes;
    const amount = p.total > 0 ? `${fmt(p.done)} / ${fmt(p.total)}` : fmt(p.done);
    this.#out.write(`\r${p.label.padEnd(12)} ${bar}  ${amount}\x1b[K`);
    this.#drawn = true;
  }

  /** Leave the last state on screen and move to a new line. */
  finish(): void {
    if (this.#drawn) this.#out.write('\n');
    this.#drawn = false;
  }
}
