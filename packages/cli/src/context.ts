import type { DomicileClient } from '@domicile/client';
import { connect, type ConnectionOptions } from './connection.ts';
import type { CliIo } from './io.ts';
import { Output, type OutputOptions } from './output.ts';

/** State of one CLI run shared by the commands: the io, the running command's output, the exit code. */
export class Context {
  readonly io: CliIo;
  /** Output of the running command; set when its action starts. */
  out: Output | undefined;
  /** Exit code of a command that finished without throwing but did not succeed (a check that found problems). */
  exitCode = 0;

  constructor(io: CliIo) {
    this.io = io;
  }

  /** Called first by every action: fixes the output switches of this run. */
  start(opts: OutputOptions): Output {
    this.out = new Output(this.io, opts);
    return this.out;
  }

  /** A client for the node the options name. */
  client(opts: ConnectionOptions): DomicileClient {
    return connect(opts, this.io, this.out ?? this.start({}));
  }
}
