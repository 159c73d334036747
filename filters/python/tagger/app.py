"""A weir filter in Python (componentize-py): tags every item with the language it went through.

Config: {"key": "filter.lang", "value": "python", "verbose": false} (all optional). Shows the host
imports: log, a counter, and print(), which weir writes into its own log (within the filter's log-line
allowance: with "verbose", a line per item tagged, most of which a large batch has suppressed).
"""

import json

from componentize_py_types import Err
from wit_world import WitWorld as Base
from wit_world.imports import host, types


# componentize-py makes a new WitWorld object per call: state that lives as long as the instance (as weir
# reuses instances) belongs at module level.
SETTINGS = {"key": "filter.lang", "value": "python"}
VERBOSE = [False]


class WitWorld(Base):
    def init(self, config: str) -> None:
        try:
            c = json.loads(config) if config.strip() else {}
        except ValueError as e:
            raise Err(f"invalid config: {e}")
        SETTINGS.update({k: str(v) for k, v in c.items() if k in SETTINGS})
        VERBOSE[0] = bool(c.get("verbose", False))
        print(f"python tagger ready: {SETTINGS['key']}={SETTINGS['value']}")

    def _tag(self, batch: types.Batch) -> types.Verdict:
        n = batch.item_count()
        value = types.Value_Str(SETTINGS["value"])
        for item in range(n):
            batch.set_attribute(item, SETTINGS["key"], value)
            if VERBOSE[0]:
                print(f"tagged item {item}")
        host.counter_add("tagged", n)
        return types.Verdict_Continue()

    def process_traces(self, batch: types.Batch) -> types.Verdict:
        return self._tag(batch)

    def process_metrics(self, batch: types.Batch) -> types.Verdict:
        return self._tag(batch)

    def process_logs(self, batch: types.Batch) -> types.Verdict:
        return self._tag(batch)
