#include "json.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>
#include <time.h>

#include "google/protobuf/timestamp.pb-c.h"

static void write_string(FILE *out, const char *s) {
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", out); break;
        case '\\': fputs("\\\\", out); break;
        case '\n': fputs("\\n", out); break;
        case '\r': fputs("\\r", out); break;
        case '\t': fputs("\\t", out); break;
        case '\b': fputs("\\b", out); break;
        case '\f': fputs("\\f", out); break;
        default:
            if (*p < 0x20) fprintf(out, "\\u%04x", *p);
            else fputc(*p, out);
        }
    }
    fputc('"', out);
}

/* The proto3 JSON name: `limit_micros` → `limitMicros`. */
static void write_name(FILE *out, const char *name) {
    fputc('"', out);
    int upper = 0;
    for (const char *p = name; *p; p++) {
        if (*p == '_') {
            upper = 1;
            continue;
        }
        fputc(upper && *p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p, out);
        upper = 0;
    }
    fputs("\":", out);
}

static void write_base64(FILE *out, const ProtobufCBinaryData *data) {
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    fputc('"', out);
    size_t i = 0;
    for (; i + 2 < data->len; i += 3) {
        uint32_t v = (uint32_t)data->data[i] << 16 | (uint32_t)data->data[i + 1] << 8 | data->data[i + 2];
        fputc(alphabet[v >> 18 & 63], out);
        fputc(alphabet[v >> 12 & 63], out);
        fputc(alphabet[v >> 6 & 63], out);
        fputc(alphabet[v & 63], out);
    }
    if (i < data->len) {
        uint32_t v = (uint32_t)data->data[i] << 16 | (i + 1 < data->len ? (uint32_t)data->data[i + 1] << 8 : 0);
        fputc(alphabet[v >> 18 & 63], out);
        fputc(alphabet[v >> 12 & 63], out);
        fputc(i + 1 < data->len ? alphabet[v >> 6 & 63] : '=', out);
        fputc('=', out);
    }
    fputc('"', out);
}

static void write_timestamp(FILE *out, const Google__Protobuf__Timestamp *t) {
    time_t seconds = (time_t)t->seconds;
    struct tm tm;
    char text[64];
    if (!gmtime_r(&seconds, &tm) || !strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &tm)) {
        fputs("null", out);
        return;
    }
    fprintf(out, "\"%s", text);
    int32_t nanos = t->nanos;
    if (nanos > 0 && nanos < 1000000000) {
        if (nanos % 1000000 == 0) fprintf(out, ".%03" PRId32, nanos / 1000000);
        else if (nanos % 1000 == 0) fprintf(out, ".%06" PRId32, nanos / 1000);
        else fprintf(out, ".%09" PRId32, nanos);
    }
    fputs("Z\"", out);
}

static void write_double(FILE *out, double value) {
    if (isnan(value)) fputs("\"NaN\"", out);
    else if (isinf(value)) fputs(value > 0 ? "\"Infinity\"" : "\"-Infinity\"", out);
    else fprintf(out, "%.17g", value);
}

/* How many bytes one value of `type` takes in a message or an array. */
static size_t value_size(ProtobufCType type) {
    switch (type) {
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64:
        return 8;
    case PROTOBUF_C_TYPE_DOUBLE: return sizeof(double);
    case PROTOBUF_C_TYPE_FLOAT: return sizeof(float);
    case PROTOBUF_C_TYPE_BOOL: return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING: return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES: return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE: return sizeof(ProtobufCMessage *);
    default: return 4; /* the 32-bit integers and enums */
    }
}

/* Whether the value at `value` is its type's default (left out unless the field has presence). */
static int is_default(const ProtobufCFieldDescriptor *field, const void *value) {
    switch (field->type) {
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64:
        return *(const uint64_t *)value == 0;
    case PROTOBUF_C_TYPE_DOUBLE: return *(const double *)value == 0;
    case PROTOBUF_C_TYPE_FLOAT: return *(const float *)value == 0;
    case PROTOBUF_C_TYPE_BOOL: return !*(const protobuf_c_boolean *)value;
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)value;
        return s == NULL || s[0] == '\0';
    }
    case PROTOBUF_C_TYPE_BYTES: return ((const ProtobufCBinaryData *)value)->len == 0;
    case PROTOBUF_C_TYPE_MESSAGE: return *(ProtobufCMessage *const *)value == NULL;
    default: return *(const uint32_t *)value == 0;
    }
}

static void write_value(FILE *out, const ProtobufCFieldDescriptor *field, const void *value) {
    switch (field->type) {
    case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
        fprintf(out, "%" PRId32, *(const int32_t *)value);
        break;
    case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32:
        fprintf(out, "%" PRIu32, *(const uint32_t *)value);
        break;
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
        fprintf(out, "\"%" PRId64 "\"", *(const int64_t *)value);
        break;
    case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64:
        fprintf(out, "\"%" PRIu64 "\"", *(const uint64_t *)value);
        break;
    case PROTOBUF_C_TYPE_FLOAT: write_double(out, *(const float *)value); break;
    case PROTOBUF_C_TYPE_DOUBLE: write_double(out, *(const double *)value); break;
    case PROTOBUF_C_TYPE_BOOL: fputs(*(const protobuf_c_boolean *)value ? "true" : "false", out); break;
    case PROTOBUF_C_TYPE_ENUM: {
        int number = *(const int *)value;
        const ProtobufCEnumValue *named = protobuf_c_enum_descriptor_get_value(field->descriptor, number);
        if (named) write_string(out, named->name);
        else fprintf(out, "%d", number);
        break;
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)value;
        write_string(out, s ? s : "");
        break;
    }
    case PROTOBUF_C_TYPE_BYTES: write_base64(out, value); break;
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *message = *(ProtobufCMessage *const *)value;
        if (message) json_write_message(out, message);
        else fputs("null", out);
        break;
    }
    }
}

void json_write_message(FILE *out, const ProtobufCMessage *message) {
    const ProtobufCMessageDescriptor *descriptor = message->descriptor;
    if (strcmp(descriptor->name, "google.protobuf.Timestamp") == 0) {
        write_timestamp(out, (const Google__Protobuf__Timestamp *)message);
        return;
    }
    const char *base = (const char *)message;
    int first = 1;
    fputc('{', out);
    for (unsigned i = 0; i < descriptor->n_fields; i++) {
        const ProtobufCFieldDescriptor *field = &descriptor->fields[i];
        const void *value = base + field->offset;
        if (field->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t count = *(const size_t *)(base + field->quantifier_offset);
            if (count == 0) continue;
            if (!first) fputc(',', out);
            first = 0;
            write_name(out, field->name);
            fputc('[', out);
            const char *items = *(char *const *)value;
            for (size_t j = 0; j < count; j++) {
                if (j) fputc(',', out);
                write_value(out, field, items + j * value_size(field->type));
            }
            fputc(']', out);
            continue;
        }
        if (field->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            /* A oneof (proto3 `optional` included): written when it is the case set. */
            if (*(const uint32_t *)(base + field->quantifier_offset) != field->id) continue;
        } else if (field->label == PROTOBUF_C_LABEL_OPTIONAL && field->quantifier_offset
                   && field->type != PROTOBUF_C_TYPE_MESSAGE && field->type != PROTOBUF_C_TYPE_STRING) {
            if (!*(const protobuf_c_boolean *)(base + field->quantifier_offset)) continue;
        } else if (is_default(field, value)) {
            continue;
        }
        if (!first) fputc(',', out);
        first = 0;
        write_name(out, field->name);
        write_value(out, field, value);
    }
    fputc('}', out);
}
