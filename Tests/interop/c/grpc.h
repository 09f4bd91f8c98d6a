/* A unary gRPC call over HTTP/2 (cleartext, prior knowledge) with libnghttp2: one connection,
 * one call at a time, messages packed and unpacked by protobuf-c. */
#ifndef LUMEN_C_CLIENT_GRPC_H
#define LUMEN_C_CLIENT_GRPC_H

#include <nghttp2/nghttp2.h>
#include <protobuf-c/protobuf-c.h>

typedef struct {
    int fd;
    nghttp2_session *session;
    char *authority;
    int timeout_ms;
} grpc_channel;

/* What a call that failed ended with: a gRPC status code (grpc/status.h numbering; transport
 * failures are UNAVAILABLE, a deadline DEADLINE_EXCEEDED) and its message. */
typedef struct {
    int code;
    char message[1024];
} grpc_status;

/* Connects to `target` ("host:port", "[v6]:port"). Returns 0, or -1 with `status` set. */
int grpc_connect(grpc_channel *channel, const char *target, int timeout_ms, grpc_status *status);

/* Calls `path` ("/package.Service/Method") with `request`, sending `authorization: Bearer
 * <token>`. Returns 0 with `*response` unpacked (free it with protobuf_c_message_free_unpacked),
 * or -1 with `status` set. */
int grpc_unary(grpc_channel *channel, const char *path, const char *token, const ProtobufCMessage *request,
               const ProtobufCMessageDescriptor *response_descriptor, ProtobufCMessage **response,
               grpc_status *status);

void grpc_close(grpc_channel *channel);

/* The canonical name of a gRPC status code ("NOT_FOUND"). */
const char *grpc_code_name(int code);

#endif
