/**
 * weir's example filter, in plain JavaScript on the interface's own bindings (no SDK; the TypeScript
 * example shows weir's SDK, which JavaScript can use too): drops the spans whose name starts with a
 * configured prefix, sets a configured attribute on the rest, and counts both. Logs and metrics pass
 * unchanged.
 *
 * Config: {"drop_prefix": "health", "key": "team", "value": "checkout"}.
 *
 * componentize-js maps weir's WIT to JavaScript: kebab-case names become camelCase, u64 is a BigInt,
 * variants are `{ tag, val }`, and a string thrown from `init` is its error.
 */
import { counterAdd } from "weir:filter/host@0.3.1";

let config;

export function init(text) {
  const c = JSON.parse(text.trim() === "" ? "{}" : text);
  for (const field of ["drop_prefix", "key", "value"]) {
    if (typeof c[field] !== "string") throw `\`${field}\` must be a string`;
  }
  if (c.key === "") throw "`key` must not be empty";
  config = { prefix: c.drop_prefix, key: c.key, value: { tag: "str", val: c.value } };
}

export function processTraces(batch) {
  const n = batch.itemCount();
  let dropped = 0n;
  let tagged = 0n;
  for (let i = 0; i < n; i++) {
    if (config.prefix !== "" && batch.spanName(i).startsWith(config.prefix)) {
      batch.dropItem(i);
      dropped++;
    } else {
      batch.setAttribute(i, config.key, config.value);
      tagged++;
    }
  }
  if (dropped) counterAdd("dropped", dropped);
  if (tagged) counterAdd("tagged", tagged);
  return { tag: "continue" };
}

export function processMetrics(_batch) {
  return { tag: "continue" };
}

export function processLogs(_batch) {
  return { tag: "continue" };
}
