// Package export_wit_world is what the generated export wrappers (wit/exports/wit_exports) call: it
// hands each call to the filter that package weir/filter registered. Not generated; not for filters to
// use directly.
package export_wit_world

import (
	"strings"

	types "weir/filter/wit/imports/weir_filter_types"
	witRuntime "weir/filter/witrt/runtime"
	witTypes "weir/filter/witrt/types"
)

// Hooks are the registered filter's entry points (set by filter.Register).
var Hooks struct {
	Init    func(config string) error
	Traces  func(*types.Batch) types.Verdict
	Metrics func(*types.Batch) types.Verdict
	Logs    func(*types.Batch) types.Verdict
}

// Init is the `init` export. The config string lives in the runtime's arena, which the next call
// reuses: the filter gets a copy it may keep.
func Init(config string) witTypes.Result[witTypes.Unit, string] {
	config = strings.Clone(config)
	if Hooks.Init == nil {
		return witTypes.Err[witTypes.Unit, string]("no filter registered: call filter.Register in an init function")
	}
	if err := Hooks.Init(config); err != nil {
		return witTypes.Err[witTypes.Unit, string](err.Error())
	}
	return witTypes.Ok[witTypes.Unit, string](witTypes.Unit{})
}

// The batch is lent to the call: its borrow handle must be dropped before the call returns (the
// canonical ABI traps otherwise), which the generated wrappers leave to this package. And what the host
// handed in during the call (strings and lists, through cabi_realloc) is released when it ends, so that
// the next call reuses the runtime's arena: the generated wrappers release only for exports that take
// such arguments. weir/filter's views copy what they return, so values the filter keeps stay valid.

// ProcessTraces is the `process-traces` export.
func ProcessTraces(batch *types.Batch) types.Verdict {
	defer witRuntime.Unpin()
	defer batch.Drop()
	return Hooks.Traces(batch)
}

// ProcessMetrics is the `process-metrics` export.
func ProcessMetrics(batch *types.Batch) types.Verdict {
	defer witRuntime.Unpin()
	defer batch.Drop()
	return Hooks.Metrics(batch)
}

// ProcessLogs is the `process-logs` export.
func ProcessLogs(batch *types.Batch) types.Verdict {
	defer witRuntime.Unpin()
	defer batch.Drop()
	return Hooks.Logs(batch)
}
