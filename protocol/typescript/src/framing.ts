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

export class LineDecoder {
  private parts: Buffer[] = [];
  private partBytes = 0;
  private readonly decoder = new TextDecoder("utf-8", { fatal: true });

  /**
   * @param maxLineBytes a line longer than this is a protocol error (the
   *   peer is broken or hostile); the decoder throws rather than buffering
   *   without bound.
   */
  constructor(private readonly maxLineBytes = Number.POSITIVE_INFINITY) {}

  /** Feeds one chunk; returns the complete lines it finished, decoded. */
  push(chunk: Buffer): string[] {
    const lines: string[] = [];
    let start = 0;
    for (;;) {
      const end = chunk.indexOf(NEWLINE, start);
      if (end === -1) break;
      lines.push(this.finishLine(chunk.subarray(start, end)));
      start = end + 1;
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      this.partBytes += rest.length;
      if (this.partBytes > this.maxLineBytes) {
        this.reset();
        throw new RangeError(`a line longer than ${this.maxLineBytes} bytes arrived`);
      }
      this.parts.push(rest);
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
  }

  private finishLine(tail: Buffer): string {
    let bytes = tail;
    if (this.parts.length > 0) {
      this.parts.push(tail);
      bytes = Buffer.concat(this.parts, this.partBytes + tail.length);
      this.reset();
    }
    if (bytes.length > this.maxLineBytes) {
      throw new RangeError(`a line of ${bytes.length} bytes arrived (limit ${this.maxLineBytes})`);
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
