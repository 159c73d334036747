// weir's example filter, in C with wit-bindgen's C bindings: drops the spans whose name starts with a
// configured prefix, sets a configured attribute on the rest, and counts both. Logs and metrics pass
// unchanged.
//
// Config: {"drop_prefix": "health", "key": "team", "value": "checkout"}.
//
// Memory: strings the host returns (a span's name) and the config string are the filter's to free;
// the error string `init` returns is freed by the bindings after the call.

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "filter.h"

static filter_string_t drop_prefix, key, value;

// Copies the JSON string value of `field` out of a flat JSON object (with \" and \\ escapes), or
// returns false when the field is missing or not a string.
static bool json_string(const uint8_t *json, size_t len, const char *field, filter_string_t *out) {
  size_t flen = strlen(field);
  for (size_t i = 0; i + flen + 2 <= len; i++) {
    if (json[i] != '"' || memcmp(json + i + 1, field, flen) != 0 || json[i + flen + 1] != '"') {
      continue;
    }
    size_t j = i + flen + 2;
    while (j < len && (json[j] == ' ' || json[j] == '\t' || json[j] == '\n' || json[j] == '\r')) j++;
    if (j >= len || json[j] != ':') continue;
    j++;
    while (j < len && (json[j] == ' ' || json[j] == '\t' || json[j] == '\n' || json[j] == '\r')) j++;
    if (j >= len || json[j] != '"') return false;
    j++;
    uint8_t *buf = malloc(len - j + 1);
    size_t n = 0;
    for (; j < len && json[j] != '"'; j++) {
      if (json[j] == '\\' && j + 1 < len) j++;
      buf[n++] = json[j];
    }
    if (j >= len) {
      free(buf);
      return false;
    }
    out->ptr = buf;
    out->len = n;
    return true;
  }
  return false;
}

static void set_error(filter_string_t *err, const char *message) {
  filter_string_dup(err, message);
}

bool exports_filter_init(filter_string_t *config, filter_string_t *err) {
  bool ok = json_string(config->ptr, config->len, "drop_prefix", &drop_prefix) &&
            json_string(config->ptr, config->len, "key", &key) &&
            json_string(config->ptr, config->len, "value", &value);
  filter_string_free(config);
  if (!ok) {
    set_error(err, "config needs \"drop_prefix\", \"key\" and \"value\", each a string");
    return false;
  }
  if (key.len == 0) {
    set_error(err, "`key` must not be empty");
    return false;
  }
  return true;
}

static void count(const char *name, uint64_t delta) {
  filter_string_t s;
  filter_string_set(&s, name);
  weir_filter_host_counter_add(&s, delta);
}

void exports_filter_process_traces(filter_borrow_batch_t batch, filter_verdict_t *ret) {
  uint32_t n = weir_filter_types_method_batch_item_count(batch);
  uint64_t dropped = 0, tagged = 0;
  weir_filter_types_value_t tag = {.tag = WEIR_FILTER_TYPES_VALUE_STR, .val.str = value};
  for (uint32_t i = 0; i < n; i++) {
    filter_string_t name;
    weir_filter_types_method_batch_span_name(batch, i, &name);
    bool drop = drop_prefix.len > 0 && name.len >= drop_prefix.len &&
                memcmp(name.ptr, drop_prefix.ptr, drop_prefix.len) == 0;
    filter_string_free(&name);
    if (drop) {
      weir_filter_types_method_batch_drop_item(batch, i);
      dropped++;
    } else {
      weir_filter_types_method_batch_set_attribute(batch, i, &key, &tag);
      tagged++;
    }
  }
  count("dropped", dropped);
  count("tagged", tagged);
  // The batch is lent for the call: its borrow is given back before returning.
  weir_filter_types_batch_drop_borrow(batch);
  ret->tag = WEIR_FILTER_TYPES_VERDICT_CONTINUE;
}

void exports_filter_process_metrics(filter_borrow_batch_t batch, filter_verdict_t *ret) {
  weir_filter_types_batch_drop_borrow(batch);
  ret->tag = WEIR_FILTER_TYPES_VERDICT_CONTINUE;
}

void exports_filter_process_logs(filter_borrow_batch_t batch, filter_verdict_t *ret) {
  weir_filter_types_batch_drop_borrow(batch);
  ret->tag = WEIR_FILTER_TYPES_VERDICT_CONTINUE;
}
