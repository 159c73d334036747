// Package types holds the generic WIT types (option, result, tuple, unit) that wit-bindgen's generated
// Go bindings use; see ../runtime for why weir provides them.
package types

// Unit is WIT's `_`, the empty value.
type Unit struct{}

// OptionSome and OptionNone are the tags of an Option.
const (
	OptionNone uint8 = 0
	OptionSome uint8 = 1
)

// Option is WIT's option<T>.
type Option[T any] struct {
	tag   uint8
	value T
}

// Some is an option holding value.
func Some[T any](value T) Option[T] { return Option[T]{OptionSome, value} }

// None is an empty option.
func None[T any]() Option[T] { return Option[T]{} }

// Tag is OptionSome or OptionNone.
func (o Option[T]) Tag() uint8 { return o.tag }

// IsSome reports whether the option holds a value.
func (o Option[T]) IsSome() bool { return o.tag == OptionSome }

// Some returns the value; it panics for None.
func (o Option[T]) Some() T {
	if o.tag != OptionSome {
		panic("wit: Some() of a None option")
	}
	return o.value
}

// Get returns the value and whether there is one.
func (o Option[T]) Get() (T, bool) { return o.value, o.tag == OptionSome }

// ResultOk and ResultErr are the tags of a Result.
const (
	ResultOk  uint8 = 0
	ResultErr uint8 = 1
)

// Result is WIT's result<T, E>.
type Result[T any, E any] struct {
	tag uint8
	ok  T
	err E
}

// Ok is a successful result.
func Ok[T any, E any](value T) Result[T, E] { return Result[T, E]{tag: ResultOk, ok: value} }

// Err is a failed result.
func Err[T any, E any](err E) Result[T, E] { return Result[T, E]{tag: ResultErr, err: err} }

// Tag is ResultOk or ResultErr.
func (r Result[T, E]) Tag() uint8 { return r.tag }

// IsErr reports whether the result failed.
func (r Result[T, E]) IsErr() bool { return r.tag == ResultErr }

// Ok returns the value; it panics for an error.
func (r Result[T, E]) Ok() T {
	if r.tag != ResultOk {
		panic("wit: Ok() of an error result")
	}
	return r.ok
}

// Err returns the error; it panics for a success.
func (r Result[T, E]) Err() E {
	if r.tag != ResultErr {
		panic("wit: Err() of a successful result")
	}
	return r.err
}

// Tuple2 is WIT's tuple<A, B>.
type Tuple2[A any, B any] struct {
	F0 A
	F1 B
}
