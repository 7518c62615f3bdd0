/**
 * Byte transports for one worker incarnation: a spawned `optimizer-worker
 * serve` (stdio) or a connection to a worker's Unix socket. Both deliver
 * whole lines and report once, through `closed`, how the peer went away.
 *
 * Rules kept here:
 * - stdout is read until it closes, *then* the exit is reported, so a
 *   response the worker wrote just before dying is still delivered before
 *   its pending requests are failed.
 * - stderr is always drained (a full pipe would block the worker) and each
 *   line goes to the logger; the last lines are kept for crash messages.
 * - `write` waits for 'drain' before writing while the stream's buffer is
 *   over its high-water mark, so a burst of large requests cannot grow
 *   memory without bound; it rejects once the peer is gone.
 */

import { spawn, type ChildProcess } from "node:child_process";
import { createConnection, type Socket } from "node:net";
import type { Writable } from "node:stream";

import type { ExitInfo } from "./errors.js";
import { LineDecoder, type BadLineError } from "./framing.js";
import { type Logger, logWorkerLine } from "./logger.js";

const STDERR_TAIL_LINES = 20;

export interface Transport {
  /** Resolves once the line is handed to the OS or buffered under the high-water mark. */
  write(line: string): Promise<void>;
  /** Settles once, when the peer has gone (never rejects). */
  readonly closed: Promise<ExitInfo>;
  /** The worker's pid when this client spawned it. */
  readonly pid: number | undefined;
  /** Ends our side: stdin EOF (the worker then exits 0) or socket end. */
  end(): void;
  /** Forcibly stops a spawned worker (no-op for a socket beyond destroying it). */
  kill(signal: NodeJS.Signals): void;
}

export interface SpawnOptions {
  command: string[];
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

type LineHandler = (line: string) => void;

abstract class StreamTransport implements Transport {
  readonly closed: Promise<ExitInfo>;
  protected resolveClosed!: (exit: ExitInfo) => void;
  protected gone = false;
  protected readonly stderrTail: string[] = [];

  constructor(
    private readonly output: Writable,
    protected readonly onLine: LineHandler,
    protected readonly logger: Logger,
  ) {
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
    // A write to a dead peer surfaces as EPIPE here; the exit is reported
    // through `closed`, so the error itself needs no more than a log line.
    output.on("error", (error) => this.logger.debug?.("worker input stream error", { error: error.message }));
  }

  abstract get pid(): number | undefined;
  abstract end(): void;
  abstract kill(signal: NodeJS.Signals): void;

  async write(line: string): Promise<void> {
    while (this.output.writableNeedDrain && !this.gone) {
      await Promise.race([new Promise((resolve) => this.output.once("drain", resolve)), this.closed]);
    }
    if (this.gone || this.output.destroyed || this.output.writableEnded) {
      throw new Error("the worker's input is closed");
    }
    this.output.write(line);
  }

  protected readLines(stream: NodeJS.ReadableStream, decoder: LineDecoder, handle: LineHandler): void {
    stream.on("data", (chunk: Buffer) => {
      let lines: string[];
      try {
        lines = decoder.push(chunk);
      } catch (error) {
        // The bad line is dropped; the chunk's good lines (answers, maybe) are not.
        this.logger.error?.("unreadable output from the worker", { error: String(error) });
        lines = (error as Partial<BadLineError>).lines ?? [];
      }
      for (const line of lines) handle(line);
    });
  }

  protected keepStderr(line: string): void {
    this.stderrTail.push(line);
    if (this.stderrTail.length > STDERR_TAIL_LINES) this.stderrTail.shift();
    logWorkerLine(this.logger, line);
  }

  protected finish(exit: Omit<ExitInfo, "stderrTail">): void {
    if (this.gone) return;
    this.gone = true;
    this.resolveClosed({ ...exit, stderrTail: [...this.stderrTail] });
  }
}

/** A worker process this client spawned and owns. */
class ChildTransport extends StreamTransport {
  constructor(
    private readonly child: ChildProcess,
    onLine: LineHandler,
    logger: Logger,
  ) {
    super(child.stdin!, onLine, logger);
    this.readLines(child.stdout!, new LineDecoder(), onLine);
    this.readLines(child.stderr!, new LineDecoder(), (line) => this.keepStderr(line));
    let spawnError: Error | undefined;
    child.on("error", (error) => {
      // ENOENT and friends: no 'close' may follow when the process never ran.
      spawnError = error;
      if (child.pid === undefined) this.finish({ exitCode: null, signal: null, cause: error });
    });
    // 'close' comes after 'exit' *and* the end of stdout and stderr.
    child.on("close", (exitCode, signal) => this.finish({ exitCode, signal, cause: spawnError }));
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  end(): void {
    this.child.stdin?.end();
  }

  kill(signal: NodeJS.Signals): void {
    if (!this.gone) this.child.kill(signal);
  }
}

/** A connection to a worker serving on a Unix socket (not ours to stop). */
class SocketTransport extends StreamTransport {
  constructor(
    private readonly socket: Socket,
    onLine: LineHandler,
    logger: Logger,
  ) {
    super(socket, onLine, logger);
    this.readLines(socket, new LineDecoder(), onLine);
    let failure: Error | undefined;
    socket.on("error", (error) => {
      failure = error;
    });
    socket.on("close", () => this.finish({ exitCode: null, signal: null, cause: failure }));
  }

  get pid(): number | undefined {
    return undefined;
  }

  end(): void {
    this.socket.end();
  }

  kill(): void {
    this.socket.destroy();
  }
}

export function spawnTransport(options: SpawnOptions, onLine: LineHandler, logger: Logger): Transport {
  const [file, ...args] = options.command;
  if (!file) throw new TypeError("command must name a program to run");
  const child = spawn(file, args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ["pipe", "pipe", "pipe"],
    // Its own process group: a Ctrl-C in the terminal reaches only the
    // client, which decides (cancel, then close). Otherwise the worker would
    // take the SIGINT as a stop and race the client's cancel. If the client
    // dies, the worker still sees EOF on stdin and exits.
    detached: true,
  });
  return new ChildTransport(child, onLine, logger);
}

export function socketTransport(path: string, onLine: LineHandler, logger: Logger): Transport {
  return new SocketTransport(createConnection({ path }), onLine, logger);
}
