"""weir's filter SDK for Python (componentize-py): subclass `Filter`, then `WitWorld = export(MyFilter)`.

It wraps the generated bindings of weir's filter interface (0.3.1) in the shape of the Rust `guest-sdk`:
- `Filter.__init__(config)` gets the configuration parsed (`parse_config`: JSON, `{}` when empty); raise
  `ConfigError` to refuse it, and weir refuses the filter with that message.
- `traces`, `metrics`, `logs` get a `Batch`; each returns `CONTINUE` (the default) or `reject(reason)`.
- `batch.spans()`, `batch.logs()`, `batch.metrics()` are typed views: `name`, `attribute`,
  `set_attribute`, `remove_attribute`, `drop`.
- `counter(name, delta)` adds to `weir_filter_counter_total{name=...}`; `log(level, message)` and
  `print()` go to weir's log.

componentize-py makes a new `WitWorld` object per call, so `export` keeps the filter at module level:
one per instance, as weir reuses instances.
"""

import json

from componentize_py_types import Err
from wit_world import WitWorld as _Base
from wit_world.imports import host, types

CONTINUE = types.Verdict_Continue()


def reject(reason: str) -> types.Verdict:
    """A verdict that refuses the whole request with `reason` (the client gets an error)."""
    return types.Verdict_Reject(reason)


class ConfigError(Exception):
    """Raised by a filter's `__init__`: weir refuses the filter with this message."""


def parse_config(text: str) -> dict:
    """The filter's configuration: JSON text, `{}` when empty."""
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError as e:
        raise ConfigError(f"invalid config: {e}") from None
    if not isinstance(value, dict):
        raise ConfigError("config must be a JSON object")
    return value


def counter(name: str, delta: int = 1) -> None:
    """Adds `delta` to the filter's counter `name`."""
    if delta:
        host.counter_add(name, delta)


def log(level: str, message: str) -> None:
    """Logs at `level`: trace, debug, info, warn or error."""
    levels = {
        "trace": host.Level.TRACE,
        "debug": host.Level.DEBUG,
        "info": host.Level.INFO,
        "warn": host.Level.WARN,
        "error": host.Level.ERROR,
    }
    host.log(levels[level], message)


def value_of(v) -> types.Value:
    """A Python value as an attribute value: str, bool, int, float or bytes."""
    if isinstance(v, bool):
        return types.Value_Boolean(v)
    if isinstance(v, int):
        return types.Value_Int(v)
    if isinstance(v, float):
        return types.Value_Double(v)
    if isinstance(v, (bytes, bytearray)):
        return types.Value_Bytes(bytes(v))
    return types.Value_Str(str(v))


def python_of(v):
    """An attribute value as a Python value (JSON values as their text)."""
    return None if v is None else v.value


class Item:
    """One span, log record or metric of a batch."""

    __slots__ = ("batch", "index")

    def __init__(self, batch: "Batch", index: int):
        self.batch = batch
        self.index = index

    def attribute(self, key: str):
        return python_of(self.batch.raw.attribute(self.index, key))

    def set_attribute(self, key: str, value) -> None:
        self.batch.raw.set_attribute(self.index, key, value_of(value))

    def remove_attribute(self, key: str) -> bool:
        return self.batch.raw.remove_attribute(self.index, key)

    def drop(self) -> None:
        """The item is not forwarded."""
        self.batch.raw.drop_item(self.index)


class Span(Item):
    @property
    def name(self) -> str:
        return self.batch.raw.span_name(self.index)


class LogRecord(Item):
    @property
    def body(self):
        return python_of(self.batch.raw.body(self.index))


class Metric(Item):
    @property
    def name(self) -> str:
        return self.batch.raw.metric_name(self.index)


class Batch:
    """One export request of one signal, lent by weir for one call."""

    __slots__ = ("raw",)

    def __init__(self, raw: types.Batch):
        self.raw = raw

    def __len__(self) -> int:
        return self.raw.item_count()

    def spans(self):
        return [Span(self, i) for i in range(len(self))]

    def logs(self):
        return [LogRecord(self, i) for i in range(len(self))]

    def metrics(self):
        return [Metric(self, i) for i in range(len(self))]

    def items(self):
        """The items whatever the signal: spans, log records or metrics."""
        return [Item(self, i) for i in range(len(self))]


class Filter:
    """A filter. Override what you need; every hook passes the batch on unchanged by default."""

    def __init__(self, config: dict):
        self.config = config

    def traces(self, batch: Batch) -> types.Verdict:
        return CONTINUE

    def metrics(self, batch: Batch) -> types.Verdict:
        return CONTINUE

    def logs(self, batch: Batch) -> types.Verdict:
        return CONTINUE


def export(cls):
    """The `WitWorld` class componentize-py exports, running filter class `cls`."""
    state = {}

    class WitWorld(_Base):
        def init(self, config: str) -> None:
            try:
                state["filter"] = cls(parse_config(config))
            except ConfigError as e:
                raise Err(str(e)) from None

        def process_traces(self, batch: types.Batch) -> types.Verdict:
            return state["filter"].traces(Batch(batch)) or CONTINUE

        def process_metrics(self, batch: types.Batch) -> types.Verdict:
            return state["filter"].metrics(Batch(batch)) or CONTINUE

        def process_logs(self, batch: types.Batch) -> types.Verdict:
            return state["filter"].logs(Batch(batch)) or CONTINUE

    return WitWorld
