// weir's example filter, in Go: drops the spans whose name starts with a configured prefix, sets a
// configured attribute on the rest, and counts both. Logs and metrics pass unchanged.
//
// Config: {"drop_prefix": "health", "key": "team", "value": "checkout"}.
package main

import (
	"errors"
	"strings"

	"weir/filter"
)

type config struct {
	DropPrefix string `json:"drop_prefix"`
	Key        string `json:"key"`
	Value      string `json:"value"`
}

type example struct {
	filter.Base
	config
}

func (e *example) Traces(batch *filter.Batch) filter.Verdict {
	var dropped, tagged uint64
	for _, span := range batch.Spans() {
		if e.DropPrefix != "" && strings.HasPrefix(span.Name(), e.DropPrefix) {
			span.Drop()
			dropped++
		} else {
			span.SetAttribute(e.Key, e.Value)
			tagged++
		}
	}
	filter.CounterAdd("dropped", dropped)
	filter.CounterAdd("tagged", tagged)
	return filter.Continue
}

func init() {
	filter.Register(func(text string) (filter.Filter, error) {
		var c config
		if err := filter.ParseConfig(text, &c); err != nil {
			return nil, err
		}
		if c.Key == "" {
			return nil, errors.New("`key` must not be empty")
		}
		return &example{config: c}, nil
	})
}

// main is not run: weir starts the module as a WASI reactor (-buildmode=c-shared).
func main() {}
