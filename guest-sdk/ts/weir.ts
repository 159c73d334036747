/**
 * weir's filter SDK for TypeScript and JavaScript (componentize-js): the surface of the Rust guest-sdk.
 *
 * ```ts
 * import { Batch, CONTINUE, Filter, exportFilter, parseConfig } from "./weir.js";
 *
 * class Dropper extends Filter {
 *   prefix: string;
 *   constructor(config: string) {
 *     super();
 *     this.prefix = parseConfig<{ prefix: string }>(config).prefix;
 *   }
 *   traces(batch: Batch) {
 *     for (const span of batch.spans()) if (span.name.startsWith(this.prefix)) span.drop();
 *     return CONTINUE;
 *   }
 * }
 *
 * export const { init, processTraces, processMetrics, processLogs } = exportFilter(Dropper);
 * ```
 *
 * A constructor that throws refuses the filter with the error's message. Signals a filter does not
 * override pass unchanged.
 */
import * as host from "weir:filter/host@0.3.1";
import type { Batch as RawBatch, Value, Verdict } from "weir:filter/types@0.3.1";

export type { Value, Verdict };

/** Pass the batch, with the filter's edits, on. */
export const CONTINUE: Verdict = { tag: "continue" };

/** Refuse the whole request: the client gets an error with `reason`. */
export function reject(reason: string): Verdict {
  return { tag: "reject", val: reason };
}

/** The filter's configuration: JSON text, `{}` when empty. Throws a clear error for bad JSON. */
export function parseConfig<T = Record<string, unknown>>(text: string): T {
  if (text.trim() === "") return {} as T;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new Error(`invalid config: ${(e as Error).message}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new Error("config must be a JSON object");
  }
  return value as T;
}

/** Adds `delta` to the filter's counter `name` (`weir_filter_counter_total{name=...}`). */
export function counter(name: string, delta: number | bigint = 1): void {
  if (delta) host.counterAdd(name, BigInt(delta));
}

/** Sets the filter's gauge `name`. */
export function gauge(name: string, value: number): void {
  host.gaugeSet(name, value);
}

/** Writes a line into weir's log, within the filter's log-line allowance. */
export function log(level: host.Level, message: string): void {
  host.log(level, message);
}

/** A JavaScript value as an attribute value: string, boolean, integer (number or bigint), number or bytes. */
export function toValue(v: string | boolean | number | bigint | Uint8Array | Value): Value {
  switch (typeof v) {
    case "string":
      return { tag: "str", val: v };
    case "boolean":
      return { tag: "boolean", val: v };
    case "bigint":
      return { tag: "int", val: v };
    case "number":
      return Number.isInteger(v) ? { tag: "int", val: BigInt(v) } : { tag: "double", val: v };
    default:
      return v instanceof Uint8Array ? { tag: "bytes", val: v } : v;
  }
}

/** An attribute value as JavaScript (JSON values as their text). */
export function fromValue(v: Value | undefined): string | boolean | bigint | number | Uint8Array | undefined {
  return v?.val;
}

/** One span, log record or metric of a batch. */
export class Item {
  constructor(
    readonly batch: RawBatch,
    readonly index: number,
  ) {}
  attribute(key: string) {
    return fromValue(this.batch.attribute(this.index, key));
  }
  setAttribute(key: string, value: Parameters<typeof toValue>[0]): void {
    this.batch.setAttribute(this.index, key, toValue(value));
  }
  removeAttribute(key: string): boolean {
    return this.batch.removeAttribute(this.index, key);
  }
  /** The item is not forwarded. */
  drop(): void {
    this.batch.dropItem(this.index);
  }
}

export class Span extends Item {
  get name(): string {
    return this.batch.spanName(this.index);
  }
  set name(name: string) {
    this.batch.setSpanName(this.index, name);
  }
}

export class LogRecord extends Item {
  get body() {
    return fromValue(this.batch.body(this.index));
  }
  get severity(): [number, string] {
    return this.batch.severity(this.index);
  }
}

export class Metric extends Item {
  get name(): string {
    return this.batch.metricName(this.index);
  }
}

/** One export request of one signal, lent for one call. */
export class Batch {
  constructor(readonly raw: RawBatch) {}
  get length(): number {
    return this.raw.itemCount();
  }
  spans(): Span[] {
    return Array.from({ length: this.length }, (_, i) => new Span(this.raw, i));
  }
  logs(): LogRecord[] {
    return Array.from({ length: this.length }, (_, i) => new LogRecord(this.raw, i));
  }
  metrics(): Metric[] {
    return Array.from({ length: this.length }, (_, i) => new Metric(this.raw, i));
  }
}

/** A filter. Override the signals it handles; the rest pass unchanged. */
export class Filter {
  traces(_batch: Batch): Verdict {
    return CONTINUE;
  }
  metrics(_batch: Batch): Verdict {
    return CONTINUE;
  }
  logs(_batch: Batch): Verdict {
    return CONTINUE;
  }
}

/**
 * The exports componentize-js wants from the entry module, running filter class `F` (constructed
 * once per instance, with the configuration text, when weir loads it).
 */
export function exportFilter(F: new (config: string) => Filter) {
  let filter: Filter | undefined;
  const running = (): Filter => {
    if (!filter) throw new Error("the filter was not initialised");
    return filter;
  };
  return {
    init(config: string): void {
      try {
        filter = new F(config);
      } catch (e) {
        // A thrown string is the `err` of `init`'s result.
        throw e instanceof Error ? e.message : String(e);
      }
    },
    processTraces: (batch: RawBatch): Verdict => running().traces(new Batch(batch)),
    processMetrics: (batch: RawBatch): Verdict => running().metrics(new Batch(batch)),
    processLogs: (batch: RawBatch): Verdict => running().logs(new Batch(batch)),
  };
}
