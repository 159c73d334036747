package filter

// The WASI preview-1 adapter, which makes the module a component, needs a little memory of its own
// (its state and stack). It cannot grow the memory (Go's allocator owns every page above the data) nor
// call Go (it runs inside Go's WASI calls), so it gets this array. `weir filter componentize` finds it
// by its header (weir's proxy/filter/src/componentize/arena.rs) and gives the adapter an allocator over
// it. The array holds no pointers, so Go's collector never looks inside.

// adapterArena starts with its header: the magic text, then its length as eight hexadecimal digits
// (no zero byte: Go's linker splits data at runs of zeros).
var adapterArena = [256 << 10]byte{
	'w', 'e', 'i', 'r', ':', 'a', 'd', 'a', 'p', 't', 'e', 'r', '-', 'a', 'r', 'e', 'n', 'a', ':', 'v', '1', ':',
	'0', '0', '0', '4', '0', '0', '0', '0',
}

// arenaHeld keeps the array in the binary: the linker drops data nothing refers to.
var arenaHeld = &adapterArena

func init() {
	if arenaHeld[0] != 'w' {
		panic("weir: the adapter arena is damaged")
	}
}
