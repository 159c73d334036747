// Types of weir's filter interface (wit/0.3.1) as componentize-js presents it to JavaScript: the part
// that weir.ts uses and exposes through `Batch.raw`. Written by hand from the WIT, in jco's mapping
// (u64 as bigint, option as `T | undefined`, variants as `{ tag, val }`, enums as strings, tuples as
// arrays).

declare module "weir:filter/types@0.3.1" {
  export type Value =
    | { tag: "str"; val: string }
    | { tag: "boolean"; val: boolean }
    | { tag: "int"; val: bigint }
    | { tag: "double"; val: number }
    | { tag: "bytes"; val: Uint8Array }
    | { tag: "json"; val: string };
  export type Verdict = { tag: "continue" } | { tag: "reject"; val: string };
  export type Signal = "traces" | "metrics" | "logs" | "profiles";
  export interface Attribute {
    key: string;
    value: Value;
  }
  export class Batch {
    signal(): Signal;
    header(name: string): string | undefined;
    peer(): string | undefined;
    tenant(): string | undefined;
    resourceCount(): number;
    resourceAttribute(res: number, key: string): Value | undefined;
    setResourceAttribute(res: number, key: string, value: Value): void;
    removeResourceAttribute(res: number, key: string): boolean;
    itemCount(): number;
    itemResource(item: number): number;
    scopeName(item: number): string;
    attributes(item: number): Attribute[];
    attribute(item: number, key: string): Value | undefined;
    setAttribute(item: number, key: string, value: Value): void;
    removeAttribute(item: number, key: string): boolean;
    dropItem(item: number): void;
    isDropped(item: number): boolean;
    spanName(item: number): string;
    setSpanName(item: number, name: string): void;
    spanKind(item: number): number;
    severity(item: number): [number, string];
    body(item: number): Value | undefined;
    setBody(item: number, value: Value): void;
    metricName(item: number): string;
    setItemRoute(item: number, exporters: string[]): void;
  }
}

declare module "weir:filter/host@0.3.1" {
  export type Level = "trace" | "debug" | "info" | "warn" | "error";
  export function log(level: Level, message: string): void;
  export function counterAdd(name: string, delta: bigint): void;
  export function gaugeSet(name: string, value: number): void;
  export function monotonicNow(): bigint;
  export function wallNow(): bigint;
  export function randomU64(): bigint;
  export function exporters(): string[];
}
