// Package runtime is the little run-time support that wit-bindgen's generated Go bindings need, for
// mainline Go (GOOS=wasip1, //go:wasmexport): memory for the canonical ABI (`Allocate` and the
// `cabi_realloc` export the host calls to pass strings and lists in), and resource handles.
//
// It implements the API of go.bytecodealliance.org/pkg/wit/runtime that the generated code calls; that
// module is not served by the Go module proxy weir builds with, so generate.sh points the bindings here.
package runtime

import (
	goruntime "runtime"
	"unsafe"
)

// pinned holds what the host allocated through cabi_realloc until the next export call begins
// (`Unpin`): the generated code turns that memory into strings and slices without copying.
var pinned goruntime.Pinner

// empty is where empty allocations point.
var empty uint64

// Allocate returns size bytes aligned to align (at most 8), pinned by pinner so that the garbage
// collector keeps them while the host reads or writes them.
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

// Unpin releases what the host allocated during the previous export call. The generated export
// wrappers call it once they have lifted their arguments.
func Unpin() {
	pinned.Unpin()
}

//go:wasmexport cabi_realloc
func cabiRealloc(old unsafe.Pointer, oldSize, align, newSize uintptr) unsafe.Pointer {
	ptr := Allocate(&pinned, newSize, align)
	if old != nil && oldSize > 0 && newSize > 0 {
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
