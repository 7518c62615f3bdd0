// Newline-delimited framing (SPEC 7), as a pure unit: no worker.
import { describe, test } from "node:test";
import assert from "node:assert/strict";

import { LineDecoder, encodeLine } from "../src/index.js";
import { InvalidUtf8Error, LineTooLongError } from "../src/framing.js";

const b = (text: string) => Buffer.from(text, "utf8");

/** Feeds `chunks` in order and returns every line they finished. */
function feed(decoder: LineDecoder, chunks: Buffer[]): string[] {
  return chunks.flatMap((chunk) => decoder.push(chunk));
}

describe("LineDecoder", () => {
  test("a line split across many chunks comes out once, whole", () => {
    const message = JSON.stringify({ jsonrpc: "2.0", id: 7, result: { values: Array.from({ length: 50 }, (_, i) => i * 1.5) } });
    const bytes = b(`${message}\n`);
    const decoder = new LineDecoder();
    const out: string[] = [];
    for (let i = 0; i < bytes.length; i += 3) {
      const got = decoder.push(bytes.subarray(i, i + 3));
      // Nothing surfaces before the newline arrives.
      if (i + 3 < bytes.length) assert.deepEqual(got, []);
      out.push(...got);
    }
    assert.deepEqual(out, [message]);
    assert.equal(decoder.pendingBytes, 0);
  });

  test("one byte per chunk", () => {
    const decoder = new LineDecoder();
    const bytes = b('{"a":1}\n{"b":2}\n');
    const out = feed(decoder, [...bytes].map((byte) => Buffer.from([byte])));
    assert.deepEqual(out, ['{"a":1}', '{"b":2}']);
  });

  test("several lines in one chunk, and a partial one kept for the next chunk", () => {
    const decoder = new LineDecoder();
    assert.deepEqual(decoder.push(b('{"id":1}\n{"id":2}\n{"id":3}\n{"id"')), ['{"id":1}', '{"id":2}', '{"id":3}']);
    assert.equal(decoder.pendingBytes, 5);
    assert.deepEqual(decoder.push(b(':4}\n')), ['{"id":4}']);
    assert.equal(decoder.pendingBytes, 0);
  });

  test("a multi-byte character split between chunks at every byte offset", () => {
    const text = JSON.stringify({ price: "12 €", mood: "🚀 to the moon 🌕", mixed: "aé€😀z" });
    const bytes = b(`${text}\n`);
    assert.ok(bytes.length > text.length, "the line has multi-byte characters");
    for (let cut = 0; cut <= bytes.length; cut++) {
      const decoder = new LineDecoder();
      const out = feed(decoder, [bytes.subarray(0, cut), bytes.subarray(cut)]);
      assert.deepEqual(out, [text], `cut at byte ${cut}`);
    }
    // And at every pair of offsets, so a 4-byte emoji is cut into three pieces too.
    const emoji = b("😀€\n");
    for (let i = 0; i <= emoji.length; i++) {
      for (let j = i; j <= emoji.length; j++) {
        const out = feed(new LineDecoder(), [emoji.subarray(0, i), emoji.subarray(i, j), emoji.subarray(j)]);
        assert.deepEqual(out, ["😀€"], `cuts at ${i} and ${j}`);
      }
    }
  });

  test("CRLF line endings lose their CR, also when CR and LF arrive apart", () => {
    const decoder = new LineDecoder();
    assert.deepEqual(decoder.push(b('{"a":1}\r\n{"b":2}\r')), ['{"a":1}']);
    assert.deepEqual(decoder.push(b("\n")), ['{"b":2}']);
    // A CR inside a line is left alone; only the terminator's is dropped.
    assert.deepEqual(decoder.push(b("x\ry\r\n")), ["x\ry"]);
  });

  test("empty chunks change nothing; an empty line comes out as an empty string", () => {
    const decoder = new LineDecoder();
    assert.deepEqual(decoder.push(Buffer.alloc(0)), []);
    assert.deepEqual(decoder.push(b('{"a"')), []);
    assert.deepEqual(decoder.push(Buffer.alloc(0)), []);
    assert.equal(decoder.pendingBytes, 4);
    assert.deepEqual(decoder.push(b(":1}\n")), ['{"a":1}']);
    assert.deepEqual(decoder.push(b("\n")), [""]);
  });

  test("a line over maxLineBytes arriving in pieces throws RangeError, is skipped, and the next line is whole", () => {
    const decoder = new LineDecoder(16);
    assert.deepEqual(decoder.push(b("0123456789")), []);
    assert.throws(() => decoder.push(b("abcdefghij")), (error: unknown) => {
      assert.ok(error instanceof RangeError);
      assert.ok(error instanceof LineTooLongError);
      assert.match(error.message, /16/);
      return true;
    });
    assert.equal(decoder.pendingBytes, 0, "nothing of the oversized line is held");
    // The rest of the oversized line is dropped, not surfaced as a line of its own.
    assert.deepEqual(decoder.push(b("more of the long line")), []);
    assert.deepEqual(decoder.push(b('...its end\n{"ok":1}\n{"ne')), ['{"ok":1}']);
    assert.deepEqual(decoder.push(b('xt":2}\n')), ['{"next":2}']);
  });

  test("a whole oversized line inside one chunk: the other lines of the chunk are kept on the error", () => {
    const decoder = new LineDecoder(10);
    let caught: unknown;
    try {
      decoder.push(b(`{"a":1}\n${"x".repeat(11)}\n{"b":2}\n{"c"`));
    } catch (error) {
      caught = error;
    }
    assert.ok(caught instanceof LineTooLongError, "threw");
    assert.ok(caught instanceof RangeError);
    assert.deepEqual(caught.lines, ['{"a":1}', '{"b":2}']);
    // The partial line after it was kept.
    assert.deepEqual(decoder.push(b(":3}\n")), ['{"c":3}']);
  });

  test("a line that is not UTF-8 throws TypeError after the chunk; the chunk's good lines are kept on the error", () => {
    const decoder = new LineDecoder();
    const chunk = Buffer.concat([b('{"id":1}\n{"junk":"'), Buffer.from([0xff, 0xfe]), b('"}\n{"id":2}\n{"id"')]);
    let caught: unknown;
    try {
      decoder.push(chunk);
    } catch (error) {
      caught = error;
    }
    assert.ok(caught instanceof TypeError, String(caught));
    assert.ok(caught instanceof InvalidUtf8Error);
    assert.deepEqual(caught.lines, ['{"id":1}', '{"id":2}'], "the answer after the bad line is not lost");
    assert.deepEqual(decoder.push(b(":3}\n")), ['{"id":3}']);
    // A bad byte in a line joined from pieces: the pieces are let go too.
    assert.throws(() => feed(decoder, [b('{"a":"'), Buffer.from([0xc3]), b('"}\n')]), TypeError);
    assert.equal(decoder.pendingBytes, 0);
    assert.deepEqual(decoder.push(b("ok\n")), ["ok"]);
  });

  test("a line of exactly maxLineBytes is accepted, also when joined from pieces", () => {
    const decoder = new LineDecoder(10);
    assert.deepEqual(decoder.push(b("0123456789\n")), ["0123456789"]);
    assert.deepEqual(feed(decoder, [b("01234"), b("56789"), b("\n")]), ["0123456789"]);
    assert.throws(() => feed(decoder, [b("01234"), b("56789"), b("X\n")]), RangeError);
    assert.deepEqual(decoder.push(b("fine\n")), ["fine"]);
  });
});

describe("encodeLine", () => {
  test("strings with newlines and other control characters never break the line", () => {
    const message = {
      jsonrpc: "2.0",
      id: 1,
      method: "loadDataset",
      params: { dataset_id: "a\nb\r\nc", calls: [{ id: "x\n", caller: "line1\nline2\u2028\u2029", mint: "\t€😀", ts_ms: 1 }] },
    };
    const line = encodeLine(message);
    assert.ok(line.endsWith("\n"));
    assert.equal(line.indexOf("\n"), line.length - 1, "the only newline is the terminator");
    assert.ok(!line.includes("\r"));
    // It round-trips through the decoder, byte-split anywhere.
    const bytes = b(line);
    const out = feed(new LineDecoder(), [bytes.subarray(0, 40), bytes.subarray(40)]);
    assert.equal(out.length, 1);
    assert.deepEqual(JSON.parse(out[0]!), message);
  });

  test("a batch (an array) is one line too", () => {
    const line = encodeLine([{ id: 1, method: "ping" }, { id: 2, method: "x\ny" }]);
    assert.equal(line.split("\n").length, 2);
    assert.equal(line.split("\n")[1], "");
  });
});
