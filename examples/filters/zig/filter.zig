//! weir's example filter, in Zig over wit-bindgen's C bindings: drops the spans whose name starts with
//! a configured prefix, sets a configured attribute on the rest, and counts both. Logs and metrics pass
//! unchanged.
//!
//! Config: {"drop_prefix": "health", "key": "team", "value": "checkout"}.

const std = @import("std");
// The bindings' header, translated by `zig translate-c` (build.sh): Zig 0.16 and later have no @cImport.
const c = @import("filter_h");

const Config = struct {
    drop_prefix: []const u8,
    key: []const u8,
    value: []const u8,
};

const allocator = std.heap.c_allocator;
var config: ?std.json.Parsed(Config) = null;

fn str(s: []const u8) c.filter_string_t {
    return .{ .ptr = @constCast(s.ptr), .len = s.len };
}

fn fail(err: *c.filter_string_t, message: []const u8) bool {
    const copy = allocator.dupe(u8, message) catch return false;
    err.* = str(copy);
    return false;
}

export fn exports_filter_init(text: *c.filter_string_t, err: *c.filter_string_t) bool {
    defer c.filter_string_free(text);
    const parsed = std.json.parseFromSlice(Config, allocator, text.ptr[0..text.len], .{}) catch
        return fail(err, "config needs \"drop_prefix\", \"key\" and \"value\", each a string");
    if (parsed.value.key.len == 0) {
        parsed.deinit();
        return fail(err, "`key` must not be empty");
    }
    config = parsed;
    return true;
}

fn count(name: []const u8, delta: u64) void {
    var s = str(name);
    c.weir_filter_host_counter_add(&s, delta);
}

export fn exports_filter_process_traces(batch: c.filter_borrow_batch_t, ret: *c.filter_verdict_t) void {
    // The batch is lent for the call: its borrow is given back before returning.
    defer c.weir_filter_types_batch_drop_borrow(batch);
    ret.tag = c.WEIR_FILTER_TYPES_VERDICT_CONTINUE;
    const cfg = config.?.value;
    var key = str(cfg.key);
    var tag: c.weir_filter_types_value_t = undefined;
    tag.tag = c.WEIR_FILTER_TYPES_VALUE_STR;
    tag.val.str = str(cfg.value);
    var dropped: u64 = 0;
    var tagged: u64 = 0;
    const n = c.weir_filter_types_method_batch_item_count(batch);
    var i: u32 = 0;
    while (i < n) : (i += 1) {
        var name: c.filter_string_t = undefined;
        c.weir_filter_types_method_batch_span_name(batch, i, &name);
        const drop = cfg.drop_prefix.len > 0 and std.mem.startsWith(u8, name.ptr[0..name.len], cfg.drop_prefix);
        c.filter_string_free(&name);
        if (drop) {
            c.weir_filter_types_method_batch_drop_item(batch, i);
            dropped += 1;
        } else {
            c.weir_filter_types_method_batch_set_attribute(batch, i, &key, &tag);
            tagged += 1;
        }
    }
    count("dropped", dropped);
    count("tagged", tagged);
}

export fn exports_filter_process_metrics(batch: c.filter_borrow_batch_t, ret: *c.filter_verdict_t) void {
    c.weir_filter_types_batch_drop_borrow(batch);
    ret.tag = c.WEIR_FILTER_TYPES_VERDICT_CONTINUE;
}

export fn exports_filter_process_logs(batch: c.filter_borrow_batch_t, ret: *c.filter_verdict_t) void {
    c.weir_filter_types_batch_drop_borrow(batch);
    ret.tag = c.WEIR_FILTER_TYPES_VERDICT_CONTINUE;
}
