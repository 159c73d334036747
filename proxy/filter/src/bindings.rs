//! The one `bindgen!` site: host-side types and traits generated from `wit/filter.wit`.

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "filter",
    imports: { default: trappable },
    additional_derives: [PartialEq],
    with: {
        "weir:filter/types.batch": super::batch::BatchState,
    },
});
