"""A weir filter in Python (componentize-py), on weir's helper module (guest-sdk/python/weir_filter.py):
tags every item with the language it went through.

Config: {"key": "filter.lang", "value": "python", "verbose": false} (all optional). Shows the host
imports: a counter, and print(), which weir writes into its own log (within the filter's log-line
allowance: with "verbose", a line per item tagged, most of which a large batch has suppressed).
"""

import weir_filter as weir


class Tagger(weir.Filter):
    def __init__(self, config: dict):
        super().__init__(config)
        self.key = str(config.get("key", "filter.lang"))
        self.value = str(config.get("value", "python"))
        self.verbose = bool(config.get("verbose", False))
        print(f"python tagger ready: {self.key}={self.value}")

    def _tag(self, batch: weir.Batch):
        items = batch.items()
        for item in items:
            item.set_attribute(self.key, self.value)
            if self.verbose:
                print(f"tagged item {item.index}")
        weir.counter("tagged", len(items))
        return weir.CONTINUE

    def traces(self, batch):
        return self._tag(batch)

    def metrics(self, batch):
        return self._tag(batch)

    def logs(self, batch):
        return self._tag(batch)


WitWorld = weir.export(Tagger)
