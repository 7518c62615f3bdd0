/**
 * The README's "Using it from TypeScript" example type-checks against the
 * built package, imported by its package name (so `exports` is checked
 * too): docs that drift from the API fail here.
 */

import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import assert from "node:assert/strict";

import { PACKAGE_DIR, REPO_DIR } from "./_worker.js";

function readmeExample(): string {
  const readme = readFileSync(join(REPO_DIR, "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("## Using it from TypeScript"));
  const match = /```ts\n([\s\S]*?)```/.exec(section);
  assert.ok(match, "README has a ```ts block under 'Using it from TypeScript'");
  return match[1]!;
}

test("the README's TypeScript example compiles against the package", () => {
  const code = readmeExample();
  assert.match(code, /from "@optimizer-worker\/client"/);
  // Inside the package directory, so its own name resolves through `exports`.
  const dir = join(PACKAGE_DIR, ".readme-check");
  mkdirSync(dir, { recursive: true });
  try {
    writeFileSync(join(dir, "example.ts"), code);
    const tsc = spawnSync(
      process.execPath,
      [join(PACKAGE_DIR, "node_modules", "typescript", "bin", "tsc"), "--ignoreConfig", "--noEmit", "--strict", "--skipLibCheck",
       "--module", "nodenext", "--moduleResolution", "nodenext", "--target", "es2022", "--types", "node",
       join(dir, "example.ts")],
      { cwd: PACKAGE_DIR, encoding: "utf8" },
    );
    assert.equal(tsc.status, 0, `tsc found errors in the README example:\n${tsc.stdout}${tsc.stderr}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
