/**
 * weir's example filter, in TypeScript with weir's SDK (weir.ts): drops the spans whose name starts
 * with a configured prefix, sets a configured attribute on the rest, and counts both. Logs and metrics
 * pass unchanged.
 *
 * Config: {"drop_prefix": "health", "key": "team", "value": "checkout"}.
 */
import { Batch, CONTINUE, Filter, Verdict, counter, exportFilter, parseConfig } from "./weir.js";

interface Config {
  drop_prefix: string;
  key: string;
  value: string;
}

class Example extends Filter {
  readonly config: Config;

  constructor(text: string) {
    super();
    const config = parseConfig<Config>(text);
    for (const field of ["drop_prefix", "key", "value"] as const) {
      if (typeof config[field] !== "string") throw new Error(`\`${field}\` must be a string`);
    }
    if (config.key === "") throw new Error("`key` must not be empty");
    this.config = config;
  }

  override traces(batch: Batch): Verdict {
    let dropped = 0;
    let tagged = 0;
    const { drop_prefix, key, value } = this.config;
    for (const span of batch.spans()) {
      if (drop_prefix !== "" && span.name.startsWith(drop_prefix)) {
        span.drop();
        dropped++;
      } else {
        span.setAttribute(key, value);
        tagged++;
      }
    }
    counter("dropped", dropped);
    counter("tagged", tagged);
    return CONTINUE;
  }
}

export const { init, processTraces, processMetrics, processLogs } = exportFilter(Example);
