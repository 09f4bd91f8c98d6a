/* A protobuf-c message as JSON, by the proto3 JSON mapping: field names in lowerCamelCase,
 * fields at their default left out (a field with presence, `optional` or in a oneof, is
 * written when set), 64-bit integers as strings, enums by name, bytes in base64,
 * google.protobuf.Timestamp as an RFC 3339 string in UTC. Works from the message's descriptor,
 * so it serves every message generated from proto/. */
#ifndef LUMEN_C_CLIENT_JSON_H
#define LUMEN_C_CLIENT_JSON_H

#include <stdio.h>
#include <protobuf-c/protobuf-c.h>

/* Writes `message` as one JSON object (no newline). */
void json_write_message(FILE *out, const ProtobufCMessage *message);

#endif
