#!/usr/bin/env node
// Generates src/generated/protocol.ts (TypeScript interfaces plus zod schemas)
// from protocol/schema.json, the JSON Schema that the Python worker writes.
//
//   node scripts/generate-protocol.mjs           write the file
//   node scripts/generate-protocol.mjs --check   exit 1 if the file on disk is stale
//   --schema PATH, --out PATH                    other input / output (the tests use these)
//
// Only the JSON Schema constructs msgspec emits for this protocol are understood.
// Anything else throws an error naming its JSON path, so a schema change can never
// silently produce wrong types: extend this script instead.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const PACKAGE_DIR = fileURLToPath(new URL("..", import.meta.url));
const REPO_DIR = path.resolve(PACKAGE_DIR, "../..");
const DEFAULT_SCHEMA = path.join(PACKAGE_DIR, "../schema.json");
const DEFAULT_OUT = path.join(PACKAGE_DIR, "src/generated/protocol.ts");

class SchemaError extends Error {}
const fail = (ptr, msg) => {
  throw new SchemaError(`${ptr}: ${msg}`);
};

// Keywords understood per kind of schema; annotations are allowed everywhere and
// never change validation (`default` in particular: the worker fills defaults).
const ANNOTATIONS = ["description", "title", "default"];
const KEYWORDS = {
  ref: ["$ref"],
  anyOf: ["anyOf", "discriminator"],
  enum: ["enum"],
  null: ["type"],
  boolean: ["type"],
  string: ["type", "minLength", "maxLength", "pattern"],
  number: ["type", "minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"],
  integer: ["type", "minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"],
  array: ["type", "items", "prefixItems", "minItems", "maxItems"],
  object: ["type", "properties", "required", "additionalProperties"],
};
const CHECKS = {
  minimum: "gte", exclusiveMinimum: "gt", maximum: "lte", exclusiveMaximum: "lt",
  minLength: "min", maxLength: "max", minItems: "min", maxItems: "max",
};

const isObj = (v) => typeof v === "object" && v !== null && !Array.isArray(v);
const quoteKey = (k) => (/^[A-Za-z_$][\w$]*$/.test(k) ? k : JSON.stringify(k));
const pascal = (s) => s.split(/[^A-Za-z0-9]+/).filter(Boolean).map((w) => w[0].toUpperCase() + w.slice(1)).join("");
// JSON Pointer: extends an already-escaped base pointer with raw path segments.
const ptrOf = (base, ...parts) =>
  [base, ...parts.map((p) => String(p).replaceAll("~", "~0").replaceAll("/", "~1"))].join("/");

function allowOnly(node, ptr, kind) {
  for (const key of Object.keys(node)) {
    if (!KEYWORDS[kind].includes(key) && !ANNOTATIONS.includes(key)) {
      fail(ptr, `unsupported keyword ${JSON.stringify(key)} (in a schema of kind ${kind})`);
    }
  }
}

// Descriptions are Python docstrings, which protocol/_schema.py normalises: each
// paragraph on one line, paragraphs separated by a blank line. The same rule is
// applied here (so a schema written before that rule, with indented docstrings,
// gives the same comments), and RST ``code`` becomes Markdown `code`.
function cleanDoc(text) {
  const paragraphs = String(text).split(/\n[ \t]*\n/)
    .map((p) => p.split(/\s+/).filter(Boolean).join(" "))
    .filter(Boolean)
    .map((p) => p.replace(/``([^`]+)``/g, "`$1`").replaceAll("*/", "*\\/"));
  return paragraphs.flatMap((p, i) => (i ? ["", p] : [p]));
}

// Comments are wrapped at DOC_WIDTH columns, at spaces; a tag line (@default ...)
// and a word longer than the width are never split.
const DOC_WIDTH = 100;
function wrap(line, width) {
  if (line.startsWith("@")) return [line];
  const out = [];
  let current = "";
  for (const word of line.split(" ")) {
    if (current && current.length + 1 + word.length > width) {
      out.push(current);
      current = word;
    } else current = current ? `${current} ${word}` : word;
  }
  return [...out, current];
}

function jsdoc(lines, indent) {
  if (lines.length === 1 && `${indent}/** ${lines[0]} */`.length <= DOC_WIDTH) return [`${indent}/** ${lines[0]} */`];
  if (!lines.length) return [];
  const body = lines.flatMap((l) => (l ? wrap(l, DOC_WIDTH - `${indent} * `.length) : [""]));
  return [`${indent}/**`, ...body.map((l) => `${indent} *${l ? ` ${l}` : ""}`), `${indent} */`];
}

// A property's description may sit on the property, on the one non-null member
// of `T | null`, or on the items of an array.
function describe(node) {
  if (!isObj(node)) return [];
  if (node.description !== undefined) return cleanDoc(node.description);
  const members = Array.isArray(node.anyOf) ? node.anyOf.filter((m) => m?.type !== "null") : [];
  if (members.length === 1) return describe(members[0]);
  if (isObj(node.items) && node.items.description !== undefined) {
    const [first, ...more] = cleanDoc(node.items.description);
    return [`Each item: ${first}`, ...more];
  }
  return [];
}

function generate(schema, { schemaLabel, sha256 }) {
  if (!isObj(schema)) fail("#", "the schema is not a JSON object");
  const top = ["$defs", "$schema", "title", "description", "methods", "notifications"];
  Object.keys(schema).forEach((k) => top.includes(k) || fail("#", `unsupported top-level key ${JSON.stringify(k)}`));
  const { $defs: defs = {}, methods = {}, notifications = {} } = schema;
  for (const [key, v] of Object.entries({ $defs: defs, methods, notifications })) {
    if (!isObj(v)) fail(ptrOf("#", key), "expected an object");
  }
  const refName = (node, ptr) => {
    const m = /^#\/\$defs\/([A-Za-z_$][\w$]*)$/.exec(String(node.$ref));
    if (!m) fail(ptr, `unsupported $ref ${JSON.stringify(node.$ref)} (only #/$defs/<Identifier>)`);
    if (!Object.hasOwn(defs, m[1])) fail(ptr, `$ref to unknown definition ${m[1]}`);
    return m[1];
  };

  // Named entries: every $def, plus a made-up name for each inline params or
  // result schema (simulate's inline result union becomes SimulateResult).
  const entries = Object.keys(defs).map((name) => ({ name, node: defs[name], ptr: ptrOf("#", "$defs", name) }));
  const nameOf = (node, ptr, madeUp) => {
    if (isObj(node) && Object.keys(node).join() === "$ref") return refName(node, ptr);
    if (entries.some((e) => e.name === madeUp)) fail(ptr, `inline schema would be named ${madeUp}, already taken`);
    entries.push({ name: madeUp, node, ptr });
    return madeUp;
  };
  const methodTypes = Object.entries(methods).map(([method, m]) => {
    const ptr = ptrOf("#", "methods", method);
    if (!isObj(m) || Object.keys(m).sort().join() !== "params,result") fail(ptr, "expected exactly {params, result}");
    const params = nameOf(m.params, ptrOf(ptr, "params"), `${pascal(method)}Params`);
    return { method, params, result: nameOf(m.result, ptrOf(ptr, "result"), `${pascal(method)}Result`) };
  });
  const notificationTypes = Object.entries(notifications).map(([name, n]) => {
    const ptr = ptrOf("#", "notifications", name);
    if (!isObj(n) || Object.keys(n).join() !== "params") fail(ptr, "expected exactly {params}");
    return { name, params: nameOf(n.params, ptrOf(ptr, "params"), `${pascal(name)}NotificationParams`) };
  });

  const discriminable = new Set(); // entries used as options of z.discriminatedUnion

  // Renders one schema node as a TypeScript type and a zod expression; collects
  // the entries it references in `deps`. `union` marks a type needing (...)[].
  function render(node, ptr, deps) {
    if (!isObj(node)) fail(ptr, "expected a schema object");
    if ("$ref" in node) {
      allowOnly(node, ptr, "ref");
      const name = refName(node, ptr);
      deps.add(name);
      return { ts: name, zod: `${name}Schema` };
    }
    if ("anyOf" in node) return renderAnyOf(node, ptr, deps);
    if ("enum" in node) {
      allowOnly(node, ptr, "enum");
      if (!Array.isArray(node.enum) || !node.enum.length || !node.enum.every((v) => typeof v === "string")) {
        fail(ptr, "only non-empty enums of strings are supported");
      }
      const lits = node.enum.map((v) => JSON.stringify(v));
      if (lits.length === 1) return { ts: lits[0], zod: `z.literal(${lits[0]})` };
      return { ts: lits.join(" | "), zod: `z.enum([${lits.join(", ")}])`, union: true };
    }
    const type = node.type;
    if (!Object.hasOwn(KEYWORDS, type) || ["ref", "anyOf", "enum"].includes(type)) {
      fail(ptr, `unsupported type ${JSON.stringify(type)}`);
    }
    allowOnly(node, ptr, type);
    const checks = Object.keys(CHECKS).filter((k) => k in node).map((k) => {
      if (typeof node[k] !== "number") fail(ptrOf(ptr, k), `${k} must be a number`);
      return `.${CHECKS[k]}(${node[k]})`;
    }).join("");
    switch (type) {
      case "null":
      case "boolean":
        return { ts: type, zod: `z.${type}()` };
      case "number":
        return { ts: "number", zod: `z.number()${checks}` };
      case "integer": // zod 4's .int() means safe integer: 1.7e12 ms timestamps pass, 1.5 fails
        return { ts: "number", zod: `z.number().int()${checks}` };
      case "string": {
        if (!("pattern" in node)) return { ts: "string", zod: `z.string()${checks}` };
        try {
          new RegExp(node.pattern);
        } catch (err) {
          fail(ptrOf(ptr, "pattern"), `not a JavaScript regular expression: ${err.message}`);
        }
        return { ts: "string", zod: `z.string()${checks}.regex(new RegExp(${JSON.stringify(node.pattern)}))` };
      }
      case "array": {
        if ("prefixItems" in node) {
          // A fixed-length tuple (msgspec's tuple[int, float]): no further items.
          if (node.items !== false) fail(ptr, "a tuple takes no items beyond its prefixItems");
          const parts = node.prefixItems.map((p, i) => render(p, ptrOf(ptr, "prefixItems", i), deps));
          return { ts: `[${parts.map((p) => p.ts).join(", ")}]`,
                   zod: `z.tuple([${parts.map((p) => p.zod).join(", ")}])` };
        }
        if (!("items" in node)) fail(ptr, "an array needs items");
        const item = render(node.items, ptrOf(ptr, "items"), deps);
        return { ts: item.union ? `(${item.ts})[]` : `${item.ts}[]`, zod: `z.array(${item.zod})${checks}` };
      }
      case "object": {
        // Structs are $defs (see renderEntry); inline objects are only maps.
        if ("properties" in node || "required" in node) fail(ptr, "inline object with properties; use a $def");
        const value = node.additionalProperties ?? true;
        if (value === true) return { ts: "Record<string, unknown>", zod: "z.record(z.string(), z.unknown())" };
        const v = isObj(value) ? render(value, ptrOf(ptr, "additionalProperties"), deps)
          : fail(ptrOf(ptr, "additionalProperties"), "a map needs a value schema or true");
        return { ts: `Record<string, ${v.ts}>`, zod: `z.record(z.string(), ${v.zod})` };
      }
    }
  }

  function renderAnyOf(node, ptr, deps) {
    allowOnly(node, ptr, "anyOf");
    if (!Array.isArray(node.anyOf) || node.anyOf.length < 2) fail(ptr, "anyOf needs at least two members");
    if ("discriminator" in node) return renderTagged(node, ptr, deps);
    const all = node.anyOf.map((m, i) => render(m, ptrOf(ptr, "anyOf", i), deps));
    const members = all.filter((m) => m.ts !== "null");
    if (all.length - members.length > 1) fail(ptr, "null appears twice in anyOf");
    const inner = members.length === 1 ? members[0] : {
      ts: members.map((m) => m.ts).join(" | "),
      zod: `z.union([${members.map((m) => m.zod).join(", ")}])`,
    };
    if (members.length === all.length) return { ...inner, union: true };
    return { ts: `${inner.ts} | null`, zod: `${inner.zod}.nullable()`, union: true };
  }

  // msgspec tagged unions: an anyOf of $refs plus {propertyName, mapping}. Each
  // mapped struct must carry the tag as a required one-value enum, so that
  // z.discriminatedUnion and the TypeScript union narrow on the same literal.
  function renderTagged(node, ptr, deps) {
    const dptr = ptrOf(ptr, "discriminator");
    const { propertyName: tag, mapping, ...rest } = isObj(node.discriminator) ? node.discriminator : {};
    if (typeof tag !== "string" || !isObj(mapping) || Object.keys(rest).length) {
      fail(dptr, "expected exactly {propertyName, mapping}");
    }
    const options = node.anyOf.map((m, i) => {
      if (!isObj(m) || Object.keys(m).join() !== "$ref") fail(ptrOf(ptr, "anyOf", i), "members must be plain $refs");
      return refName(m, ptrOf(ptr, "anyOf", i));
    });
    const mapped = Object.entries(mapping)
      .map(([value, ref]) => [value, refName({ $ref: ref }, ptrOf(dptr, "mapping", value))]);
    if (mapped.map(([, n]) => n).sort().join() !== [...options].sort().join()) {
      fail(dptr, "mapping does not name exactly the anyOf members");
    }
    for (const [value, name] of mapped) {
      const prop = defs[name].properties?.[tag];
      if (!defs[name].required?.includes(tag) || prop?.enum?.length !== 1 || prop.enum[0] !== value) {
        fail(ptrOf("#", "$defs", name), `needs a required property ${tag} with enum [${JSON.stringify(value)}]`);
      }
    }
    options.forEach((n) => (deps.add(n), discriminable.add(n)));
    const zodOptions = options.map((n) => `${n}Schema`).join(", ");
    return { ts: options.join(" | "), zod: `z.discriminatedUnion(${JSON.stringify(tag)}, [${zodOptions}])`, union: true };
  }

  // One entry: `export interface` for an object with properties, else `export type`.
  // An object's zod constructor is left as CTOR until its direction is known.
  function renderEntry({ name, node, ptr }) {
    const deps = new Set();
    const doc = describe(node);
    if (isObj(node) && node.title !== undefined && node.title !== name) doc.unshift(...cleanDoc(node.title));
    if (!isObj(node) || node.type !== "object" || !("properties" in node)) {
      const { ts, zod } = render(node, ptr, deps);
      return { name, deps, doc, typeDecl: `export type ${name} = ${ts};`, zod };
    }
    allowOnly(node, ptr, "object");
    const { properties: props, required = [], additionalProperties: extra = true } = node;
    if (!isObj(props)) fail(ptrOf(ptr, "properties"), "expected an object");
    if (!Array.isArray(required)) fail(ptrOf(ptr, "required"), "expected an array");
    required.forEach((r, i) => Object.hasOwn(props, r) || fail(ptrOf(ptr, "required", i), `no property ${r}`));
    if (typeof extra !== "boolean") fail(ptrOf(ptr, "additionalProperties"), "only true or false next to properties");
    // Required properties first, in declaration order (`required` keeps the struct's
    // field order; `properties` is sorted), then the optional ones.
    const keys = [...required, ...Object.keys(props).filter((k) => !required.includes(k))];
    const tsLines = [];
    const zodLines = [];
    for (const key of keys) {
      const prop = props[key];
      const { ts, zod } = render(prop, ptrOf(ptr, "properties", key), deps);
      const opt = !required.includes(key);
      const pdoc = describe(prop);
      if ("default" in prop) pdoc.push(`@default ${JSON.stringify(prop.default)}`);
      tsLines.push(...jsdoc(pdoc, "  "), `  ${quoteKey(key)}${opt ? "?" : ""}: ${ts};`);
      zodLines.push(`  ${quoteKey(key)}: ${zod}${opt ? ".optional()" : ""},`);
    }
    const body = (lines) => (lines.length ? `{\n${lines.join("\n")}\n}` : "{}");
    const typeDecl = `export interface ${name} ${body(tsLines)}`;
    return { name, deps, doc, closed: !extra, typeDecl, zod: `CTOR(${body(zodLines)})` };
  }

  const rendered = new Map(entries.map((e) => [e.name, renderEntry(e)]));

  // Direction decides strict vs loose. The worker marks results closed as well
  // (msgspec forbid_unknown_fields), but a client must not reject a newer worker's
  // extra result fields. So a closed object is a z.strictObject only if the client
  // never receives it: not reachable from any method result or notification (the
  // schema does not say which way a notification travels, so any may be received).
  // Shared types (Params, Empty, CancelParams) are therefore loose; the worker still
  // rejects unknown fields that it is sent.
  const received = new Set();
  const receive = (name) => {
    if (received.has(name)) return;
    received.add(name);
    rendered.get(name).deps.forEach(receive);
  };
  methodTypes.forEach((m) => receive(m.result));
  notificationTypes.forEach((n) => receive(n.params));

  // Consts must be declared before use: depth-first, dependencies first, ties in
  // schema order. A cycle would need z.lazy, which this generator does not emit.
  const order = [];
  const state = new Map();
  const visit = (name, trail) => {
    if (state.get(name) === "done") return;
    if (state.get(name) === "active") fail("#/$defs", `reference cycle ${[...trail, name].join(" -> ")}; unsupported`);
    state.set(name, "active");
    rendered.get(name).deps.forEach((dep) => visit(dep, [...trail, name]));
    state.set(name, "done");
    order.push(name);
  };
  entries.forEach((e) => visit(e.name, []));

  // Each const is annotated z.ZodType<X>: tsc then proves that whatever the schema
  // outputs is an X (a loose object's output, X & Record<string, unknown>, still is),
  // and the public type stays short. zod 4's discriminatedUnion needs options whose
  // type exposes `_zod.propValues`, which z.ZodType<X> hides, so union options are
  // annotated z.ZodType<X> & z.core.$ZodTypeDiscriminable instead. The proof is one
  // way (a schema stricter than X still passes), so test/generated.test.ts checks
  // each field's optionality and nullability against schema.json at run time.
  const out = [
    `// Generated by scripts/generate-protocol.mjs from ${schemaLabel}; do not edit.`,
    "// Regenerate with `npm run generate` in protocol/typescript.",
    `// ${path.basename(schemaLabel)} sha256: ${sha256}`,
    "//",
    "// z.strictObject: params only the client sends (the worker rejects unknown fields).",
    "// z.looseObject: anything the client may receive (a newer worker may add fields).",
    "",
    'import { z } from "zod";',
  ];
  for (const name of order) {
    const r = rendered.get(name);
    const ctor = r.closed && !received.has(name) ? "z.strictObject" : "z.looseObject";
    const zod = r.zod.replace(/^CTOR/, ctor);
    const annotation = `z.ZodType<${name}>${discriminable.has(name) ? " & z.core.$ZodTypeDiscriminable" : ""}`;
    const head = `export const ${name}Schema: ${annotation} =`;
    const wrap = !zod.includes("\n") && head.length + zod.length > 100;
    out.push("", ...jsdoc(r.doc, ""), r.typeDecl, "", `${head}${wrap ? "\n  " : " "}${zod};`);
  }

  const block = (open, lines, close) => ["", open, ...lines.map((l) => `  ${l}`), close];
  const methodMap = (f) => methodTypes.map((m) => `${quoteKey(m.method)}: ${f(m)}`);
  const notificationMap = (f) => notificationTypes.map((n) => `${quoteKey(n.name)}: ${f(n)}`);
  out.push(
    ...block("/** Every JSON-RPC method, with its params and result types. */\nexport interface Methods {",
      methodMap((m) => `{ params: ${m.params}; result: ${m.result} };`), "}"),
    "",
    "export type MethodName = keyof Methods;",
    'export type ParamsOf<M extends MethodName> = Methods[M]["params"];',
    'export type ResultOf<M extends MethodName> = Methods[M]["result"];',
    ...block("export const METHOD_NAMES = [", methodTypes.map((m) => `${JSON.stringify(m.method)},`),
      "] as const satisfies readonly MethodName[];"),
    ...block("export const paramsSchemas: { [M in MethodName]: z.ZodType<ParamsOf<M>> } = {",
      methodMap((m) => `${m.params}Schema,`), "};"),
    ...block("export const resultSchemas: { [M in MethodName]: z.ZodType<ResultOf<M>> } = {",
      methodMap((m) => `${m.result}Schema,`), "};"),
    ...block("/** Every notification (either direction), with its params type. */\nexport interface Notifications {",
      notificationMap((n) => `${n.params};`), "}"),
    "",
    "export type NotificationName = keyof Notifications;",
    ...block("export const notificationSchemas: { [N in NotificationName]: z.ZodType<Notifications[N]> } = {",
      notificationMap((n) => `${n.params}Schema,`), "};"),
    "",
  );
  return out.join("\n");
}

// Paths inside the repository are shown relative to its root, others as given.
function display(p) {
  const rel = path.relative(REPO_DIR, p);
  return rel.startsWith("..") || path.isAbsolute(rel) ? p : rel.split(path.sep).join("/");
}

function main(argv) {
  const opts = { check: false, schema: DEFAULT_SCHEMA, out: DEFAULT_OUT };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--check") opts.check = true;
    else if (["--schema", "--out"].includes(argv[i]) && i + 1 < argv.length) {
      opts[argv[i].slice(2)] = path.resolve(argv[++i]);
    } else throw new SchemaError(`bad argument ${JSON.stringify(argv[i])}; usage: [--check] [--schema P] [--out P]`);
  }
  const bytes = readFileSync(opts.schema);
  let schema;
  try {
    schema = JSON.parse(bytes.toString("utf8"));
  } catch (err) {
    throw new SchemaError(`${display(opts.schema)} is not valid JSON: ${err.message}`);
  }
  const sha256 = createHash("sha256").update(bytes).digest("hex");
  const text = generate(schema, { schemaLabel: display(opts.schema), sha256 });
  if (opts.check) {
    if (existsSync(opts.out) && readFileSync(opts.out, "utf8") === text) return 0;
    process.stderr.write(`${display(opts.out)} is stale: it is not what ${display(opts.schema)} generates.\n` +
      "Fix: run `npm run generate` in protocol/typescript, then commit the result.\n");
    return 1;
  }
  mkdirSync(path.dirname(opts.out), { recursive: true });
  writeFileSync(opts.out, text);
  process.stderr.write(`wrote ${display(opts.out)}\n`);
  return 0;
}

try {
  process.exitCode = main(process.argv.slice(2));
} catch (err) {
  if (!(err instanceof SchemaError) && err?.code !== "ENOENT") throw err;
  process.stderr.write(`generate-protocol: ${err.message}\n`);
  process.exitCode = 2;
}
