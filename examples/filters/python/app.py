"""weir's example filter, in Python: drops the spans whose name starts with a configured prefix, sets a
configured attribute on the rest, and counts both. Logs and metrics pass unchanged.

Config: {"drop_prefix": "health", "key": "team", "value": "checkout"}.
"""

import weir_filter as weir


class Example(weir.Filter):
    def __init__(self, config: dict):
        super().__init__(config)
        for field in ("drop_prefix", "key", "value"):
            if not isinstance(config.get(field), str):
                raise weir.ConfigError(f"`{field}` must be a string")
        if not config["key"]:
            raise weir.ConfigError("`key` must not be empty")
        self.prefix = config["drop_prefix"]
        self.key = config["key"]
        self.value = config["value"]

    def traces(self, batch: weir.Batch):
        dropped = tagged = 0
        for span in batch.spans():
            if self.prefix and span.name.startswith(self.prefix):
                span.drop()
                dropped += 1
            else:
                span.set_attribute(self.key, self.value)
                tagged += 1
        weir.counter("dropped", dropped)
        weir.counter("tagged", tagged)
        return weir.CONTINUE


WitWorld = weir.export(Example)
