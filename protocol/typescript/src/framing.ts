/**
 * Newline-delimited framing (SPEC section 7): one UTF-8 JSON message per
 * line, `\n` terminated.
 *
 * Lines are split on the 0x0A byte *before* decoding. In UTF-8 that byte never
 * occurs inside a multi-byte sequence, so a character split across two chunks
 * is always whole by the time its line is decoded. Chunks of a partial line
 * are kept in a list and joined once, so a 100 MB message arriving in 64 KiB
 * pieces costs one copy, not one per chunk.
 */

const NEWLINE = 0x0a;

/**
 * `push` found a bad line: over `maxLineBytes` (a `RangeError`,
 * `LineTooLongError`) or not UTF-8 (a `TypeError`, `InvalidUtf8Error`). It
 * is thrown after the whole chunk was read: `lines` holds the chunk's good
 * lines, which a caller should still handle. The bad line is dropped (an
 * oversized one up to its newline, across chunks) and decoding goes on with
 * the line after it.
 */
export interface BadLineError extends Error {
  readonly lines: string[];
}

export class LineTooLongError extends RangeError implements BadLineError {
  override name = "LineTooLongError";
  lines: string[] = [];
}

export class InvalidUtf8Error extends TypeError implements BadLineError {
  override name = "InvalidUtf8Error";
  lines: string[] = [];
}

export class LineDecoder {
  private parts: Buffer[] = [];
  private partBytes = 0;
  /** Inside a line that went over the limit: drop bytes up to its newline. */
  private discarding = false;
  private readonly decoder = new TextDecoder("utf-8", { fatal: true });

  /**
   * @param maxLineBytes a line longer than this is a protocol error (the
   *   peer is broken or hostile); the decoder throws `LineTooLongError`
   *   rather than buffering without bound.
   */
  constructor(private readonly maxLineBytes = Number.POSITIVE_INFINITY) {}

  /**
   * Feeds one chunk; returns the complete lines it finished, decoded.
   * Throws a `BadLineError` (carrying the chunk's good lines) if one was bad.
   */
  push(chunk: Buffer): string[] {
    const lines: string[] = [];
    let bad: LineTooLongError | InvalidUtf8Error | undefined;
    let start = 0;
    for (;;) {
      const end = chunk.indexOf(NEWLINE, start);
      if (end === -1) break;
      const tail = chunk.subarray(start, end);
      start = end + 1;
      if (this.discarding) {
        this.discarding = false; // the oversized line ends here
      } else if (this.partBytes + tail.length > this.maxLineBytes) {
        bad ??= new LineTooLongError(`a line of ${this.partBytes + tail.length} bytes arrived (limit ${this.maxLineBytes})`);
        this.reset();
      } else {
        try {
          lines.push(this.finishLine(tail));
        } catch (error) {
          bad ??= new InvalidUtf8Error(`a line that is not UTF-8 arrived (${(error as Error).message})`, { cause: error });
        }
      }
    }
    if (start < chunk.length && !this.discarding) {
      const rest = chunk.subarray(start);
      this.partBytes += rest.length;
      if (this.partBytes > this.maxLineBytes) {
        bad ??= new LineTooLongError(`a line longer than ${this.maxLineBytes} bytes arrived`);
        this.reset();
        this.discarding = true;
      } else {
        this.parts.push(rest);
      }
    }
    if (bad !== undefined) {
      bad.lines = lines;
      throw bad;
    }
    return lines;
  }

  /** Bytes of an unfinished line held (non-zero at EOF means a torn message). */
  get pendingBytes(): number {
    return this.partBytes;
  }

  reset(): void {
    this.parts = [];
    this.partBytes = 0;
    this.discarding = false;
  }

  private finishLine(tail: Buffer): string {
    let bytes = tail;
    if (this.parts.length > 0) {
      this.parts.push(tail);
      bytes = Buffer.concat(this.parts, this.partBytes + tail.length);
      this.reset();
    }
    // Tolerate CRLF from peers that write it; JSON never ends in a bare CR.
    const end = bytes.length > 0 && bytes[bytes.length - 1] === 0x0d ? bytes.length - 1 : bytes.length;
    return this.decoder.decode(bytes.subarray(0, end));
  }
}

/** Encodes one message as a line. JSON.stringify never emits a raw newline. */
export function encodeLine(message: unknown): string {
  return `${JSON.stringify(message)}\n`;
}
