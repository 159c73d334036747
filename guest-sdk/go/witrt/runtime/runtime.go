// Package runtime is the little run-time support that wit-bindgen's generated Go bindings need, for
// mainline Go (GOOS=wasip1, //go:wasmexport): memory for the canonical ABI (`Allocate` and the
// `cabi_realloc` export the host calls to pass strings and lists in), and resource handles.
//
// It implements the API of go.bytecodealliance.org/pkg/wit/runtime that the generated code calls; that
// module is not served by the Go module proxy weir builds with, so generate.sh points the bindings here.
//
// What the host passes in lives in a static arena, not on Go's heap, because `cabi_realloc` runs
// inside the host's lowering of a value, where the component may not call out: Go's allocator, when it
// needs a new span, asks WASI for the time, and the call traps ("cannot leave component instance").
// The arena is reused from the start at the end of each export call (`Unpin`), so what the host hands
// a call is valid until that call returns: weir/filter's views copy what they return; code that keeps
// a value from the raw bindings past the call must copy it (strings.Clone).
package runtime

import (
	goruntime "runtime"
	"unsafe"
)

// hostArenaSize bounds what the host can pass one call. Past it, cabi_realloc falls back to Go's heap,
// which works while Go has room and otherwise makes the call fail (a fault, not corruption).
const hostArenaSize = 8 << 20

// hostArena holds what the host passes in: untouched pages cost nothing resident.
var hostArena [hostArenaSize]byte

// hostUsed is how much of hostArena this call has used.
var hostUsed uintptr

// pinned holds what cabi_realloc had to take from Go's heap, until `Unpin`.
var pinned goruntime.Pinner

// empty is where empty allocations point.
var empty uint64

// Allocate returns size bytes aligned to align (at most 8) from Go's heap, pinned by pinner so that
// the garbage collector keeps them while the host reads or writes them. Not for cabi_realloc.
func Allocate(pinner *goruntime.Pinner, size, align uintptr) unsafe.Pointer {
	if size == 0 {
		// A valid, aligned address for an empty list: nothing is read or written there.
		return unsafe.Pointer(&empty)
	}
	words := make([]uint64, (size+7)/8)
	ptr := unsafe.Pointer(unsafe.SliceData(words))
	pinner.Pin(ptr)
	return ptr
}

// Unpin ends a call's use of what the host passed it: the arena is reused from the start, and what
// came from Go's heap is released. The generated `init` wrapper calls it once it has lifted its
// argument; weir/filter calls it when each process call returns.
func Unpin() {
	hostUsed = 0
	pinned.Unpin()
}

//go:wasmexport cabi_realloc
func cabiRealloc(old unsafe.Pointer, oldSize, align, newSize uintptr) unsafe.Pointer {
	if newSize == 0 {
		return unsafe.Pointer(&empty)
	}
	var ptr unsafe.Pointer
	start := (hostUsed + align - 1) &^ (align - 1)
	if align != 0 && start+newSize <= hostArenaSize && start+newSize > start {
		ptr = unsafe.Pointer(&hostArena[start])
		hostUsed = start + newSize
	} else {
		ptr = Allocate(&pinned, newSize, align)
	}
	if old != nil && oldSize > 0 {
		copy(unsafe.Slice((*byte)(ptr), newSize), unsafe.Slice((*byte)(old), min(oldSize, newSize)))
	}
	return ptr
}

// Handle is a resource handle: the host's index of a resource the guest owns or borrows. Zero means
// taken (moved to the host, or dropped).
type Handle struct {
	value int32
}

// MakeHandle wraps a handle the host gave.
func MakeHandle(value int32) *Handle {
	return &Handle{value}
}

// Use returns the handle for a call that borrows it.
func (h *Handle) Use() int32 {
	if h.value == 0 {
		panic("wit: use of a resource handle after it was moved or dropped")
	}
	return h.value
}

// Take returns the handle and forgets it: ownership moves to the host.
func (h *Handle) Take() int32 {
	v := h.Use()
	h.value = 0
	return v
}

// TakeOrNil is Take, but returns 0 for a handle already taken.
func (h *Handle) TakeOrNil() int32 {
	v := h.value
	h.value = 0
	return v
}

// Set replaces the handle.
func (h *Handle) Set(value int32) {
	h.value = value
}
