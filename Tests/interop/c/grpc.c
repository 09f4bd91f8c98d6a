#include "grpc.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum {
    GRPC_OK = 0, GRPC_UNKNOWN = 2, GRPC_DEADLINE_EXCEEDED = 4, GRPC_UNIMPLEMENTED = 12, GRPC_INTERNAL = 13,
    GRPC_UNAVAILABLE = 14, GRPC_UNAUTHENTICATED = 16, GRPC_PERMISSION_DENIED = 7, GRPC_RESOURCE_EXHAUSTED = 8,
};

/* Answers larger than this are refused (the server's own limit is lower). */
#define MAX_ANSWER_BYTES (64u * 1024u * 1024u)

const char *grpc_code_name(int code) {
    static const char *names[] = {
        "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
        "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
        "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
    };
    return code >= 0 && code < (int)(sizeof names / sizeof names[0]) ? names[code] : "UNKNOWN";
}

static void set_status(grpc_status *status, int code, const char *format, ...) {
    status->code = code;
    va_list arguments;
    va_start(arguments, format);
    vsnprintf(status->message, sizeof status->message, format, arguments);
    va_end(arguments);
}

/* One call's state, filled by nghttp2's callbacks. */
typedef struct {
    int32_t stream_id;
    const uint8_t *request;
    size_t request_length, request_sent;
    uint8_t *answer;
    size_t answer_length, answer_capacity;
    int too_large;
    int http_status;
    int grpc_status; /* -1 until the trailers (or a trailers-only answer) name it */
    char grpc_message[1024];
    int closed;
    uint32_t error_code;
} call_state;

static ssize_t send_callback(nghttp2_session *session, const uint8_t *data, size_t length, int flags, void *user_data) {
    (void)session, (void)flags;
    grpc_channel *channel = user_data;
    size_t sent = 0;
    while (sent < length) {
        ssize_t n = send(channel->fd, data + sent, length - sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return NGHTTP2_ERR_CALLBACK_FAILURE;
        sent += (size_t)n;
    }
    return (ssize_t)length;
}

static call_state *current_call(nghttp2_session *session, int32_t stream_id) {
    call_state *call = nghttp2_session_get_stream_user_data(session, stream_id);
    return call && call->stream_id == stream_id ? call : NULL;
}

/* grpc-message is percent-encoded (the gRPC HTTP/2 protocol). */
static void percent_decode(char *to, size_t capacity, const uint8_t *from, size_t length) {
    size_t written = 0;
    for (size_t i = 0; i < length && written + 1 < capacity; i++) {
        unsigned value;
        if (from[i] == '%' && i + 2 < length && sscanf((const char *)from + i + 1, "%2x", &value) == 1) {
            to[written++] = (char)value;
            i += 2;
        } else {
            to[written++] = (char)from[i];
        }
    }
    to[written] = '\0';
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name, size_t name_length,
                     const uint8_t *value, size_t value_length, uint8_t flags, void *user_data) {
    (void)flags, (void)user_data;
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    call_state *call = current_call(session, frame->hd.stream_id);
    if (!call) return 0;
    char text[32];
    size_t n = value_length < sizeof text - 1 ? value_length : sizeof text - 1;
    if (name_length == 7 && memcmp(name, ":status", 7) == 0) {
        memcpy(text, value, n);
        text[n] = '\0';
        call->http_status = atoi(text);
    } else if (name_length == 11 && memcmp(name, "grpc-status", 11) == 0) {
        memcpy(text, value, n);
        text[n] = '\0';
        call->grpc_status = atoi(text);
    } else if (name_length == 12 && memcmp(name, "grpc-message", 12) == 0) {
        percent_decode(call->grpc_message, sizeof call->grpc_message, value, value_length);
    }
    return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id, const uint8_t *data, size_t length,
                         void *user_data) {
    (void)flags, (void)user_data;
    call_state *call = current_call(session, stream_id);
    if (!call) return 0;
    if (call->answer_length + length > MAX_ANSWER_BYTES) {
        call->too_large = 1;
        return nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_CANCEL);
    }
    if (call->answer_length + length > call->answer_capacity) {
        size_t capacity = call->answer_capacity ? call->answer_capacity : 16384;
        while (capacity < call->answer_length + length) capacity *= 2;
        uint8_t *grown = realloc(call->answer, capacity);
        if (!grown) return NGHTTP2_ERR_CALLBACK_FAILURE;
        call->answer = grown;
        call->answer_capacity = capacity;
    }
    memcpy(call->answer + call->answer_length, data, length);
    call->answer_length += length;
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code, void *user_data) {
    (void)user_data;
    call_state *call = current_call(session, stream_id);
    if (call) {
        call->closed = 1;
        call->error_code = error_code;
    }
    return 0;
}

static ssize_t read_request(nghttp2_session *session, int32_t stream_id, uint8_t *buffer, size_t length,
                            uint32_t *data_flags, nghttp2_data_source *source, void *user_data) {
    (void)session, (void)stream_id, (void)user_data;
    call_state *call = source->ptr;
    size_t n = call->request_length - call->request_sent;
    if (n > length) n = length;
    memcpy(buffer, call->request + call->request_sent, n);
    call->request_sent += n;
    if (call->request_sent == call->request_length) *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static long long now_ms(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

int grpc_connect(grpc_channel *channel, const char *target, int timeout_ms, grpc_status *status) {
    memset(channel, 0, sizeof *channel);
    channel->fd = -1;
    channel->timeout_ms = timeout_ms;
    const char *colon = strrchr(target, ':');
    if (!colon || colon == target || colon[1] == '\0') {
        set_status(status, GRPC_UNAVAILABLE, "the address must be HOST:PORT, got \"%s\"", target);
        return -1;
    }
    char host[256];
    size_t host_length = (size_t)(colon - target);
    const char *host_start = target;
    if (target[0] == '[' && colon[-1] == ']') {
        host_start++;
        host_length -= 2;
    }
    if (host_length == 0 || host_length >= sizeof host) {
        set_status(status, GRPC_UNAVAILABLE, "the address must be HOST:PORT, got \"%s\"", target);
        return -1;
    }
    memcpy(host, host_start, host_length);
    host[host_length] = '\0';
    struct addrinfo hints = {0}, *addresses = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rv = getaddrinfo(host, colon + 1, &hints, &addresses);
    if (rv != 0) {
        set_status(status, GRPC_UNAVAILABLE, "cannot resolve %s: %s", target, gai_strerror(rv));
        return -1;
    }
    int error = 0;
    for (struct addrinfo *address = addresses; address; address = address->ai_next) {
        int fd = socket(address->ai_family, address->ai_socktype, address->ai_protocol);
        if (fd < 0) {
            error = errno;
            continue;
        }
        if (connect(fd, address->ai_addr, address->ai_addrlen) == 0) {
            channel->fd = fd;
            break;
        }
        error = errno;
        close(fd);
    }
    freeaddrinfo(addresses);
    if (channel->fd < 0) {
        set_status(status, GRPC_UNAVAILABLE, "cannot connect to %s: %s", target, strerror(error));
        return -1;
    }
    channel->authority = strdup(target);
    nghttp2_session_callbacks *callbacks;
    if (!channel->authority || nghttp2_session_callbacks_new(&callbacks) != 0) {
        set_status(status, GRPC_INTERNAL, "out of memory");
        grpc_close(channel);
        return -1;
    }
    nghttp2_session_callbacks_set_send_callback(callbacks, send_callback);
    nghttp2_session_callbacks_set_on_header_callback(callbacks, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, on_stream_close);
    rv = nghttp2_session_client_new(&channel->session, callbacks, channel);
    nghttp2_session_callbacks_del(callbacks);
    if (rv != 0) {
        set_status(status, GRPC_INTERNAL, "cannot start an HTTP/2 session: %s", nghttp2_strerror(rv));
        grpc_close(channel);
        return -1;
    }
    nghttp2_submit_settings(channel->session, NGHTTP2_FLAG_NONE, NULL, 0);
    return 0;
}

void grpc_close(grpc_channel *channel) {
    if (channel->session) {
        nghttp2_session_terminate_session(channel->session, NGHTTP2_NO_ERROR);
        nghttp2_session_send(channel->session);
        nghttp2_session_del(channel->session);
    }
    if (channel->fd >= 0) close(channel->fd);
    free(channel->authority);
    memset(channel, 0, sizeof *channel);
    channel->fd = -1;
}

/* The gRPC status of an HTTP answer that is not a gRPC one (gRPC's "HTTP to gRPC status code
 * mapping"). */
static int code_for_http(int http_status) {
    switch (http_status) {
    case 400: return GRPC_INTERNAL;
    case 401: return GRPC_UNAUTHENTICATED;
    case 403: return GRPC_PERMISSION_DENIED;
    case 404: return GRPC_UNIMPLEMENTED;
    case 429: case 502: case 503: case 504: return GRPC_UNAVAILABLE;
    default: return GRPC_UNKNOWN;
    }
}

/* Runs the session until the call's stream has closed. */
static int run_until_closed(grpc_channel *channel, call_state *call, grpc_status *status) {
    long long deadline = now_ms() + channel->timeout_ms;
    uint8_t buffer[16384];
    while (!call->closed) {
        int rv = nghttp2_session_send(channel->session);
        if (rv != 0) {
            set_status(status, GRPC_UNAVAILABLE, "cannot send to %s: %s", channel->authority, nghttp2_strerror(rv));
            return -1;
        }
        if (call->closed) break;
        if (!nghttp2_session_want_read(channel->session) && !nghttp2_session_want_write(channel->session)) {
            set_status(status, GRPC_UNAVAILABLE, "the connection to %s ended before the answer", channel->authority);
            return -1;
        }
        long long left = deadline - now_ms();
        if (left <= 0) {
            set_status(status, GRPC_DEADLINE_EXCEEDED, "no answer from %s within %d ms", channel->authority,
                       channel->timeout_ms);
            return -1;
        }
        struct pollfd poll_fd = {.fd = channel->fd, .events = POLLIN};
        rv = poll(&poll_fd, 1, (int)left);
        if (rv < 0 && errno == EINTR) continue;
        if (rv < 0) {
            set_status(status, GRPC_UNAVAILABLE, "poll: %s", strerror(errno));
            return -1;
        }
        if (rv == 0) continue;
        ssize_t n = read(channel->fd, buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            set_status(status, GRPC_UNAVAILABLE, "cannot read from %s: %s", channel->authority, strerror(errno));
            return -1;
        }
        if (n == 0) {
            set_status(status, GRPC_UNAVAILABLE, "%s closed the connection before the answer", channel->authority);
            return -1;
        }
        ssize_t used = nghttp2_session_mem_recv(channel->session, buffer, (size_t)n);
        if (used < 0) {
            set_status(status, GRPC_UNAVAILABLE, "bad HTTP/2 from %s: %s", channel->authority,
                       nghttp2_strerror((int)used));
            return -1;
        }
    }
    /* Acknowledgements and window updates the last frames called for. */
    nghttp2_session_send(channel->session);
    return 0;
}

#define HEADER(NAME, VALUE)                                                                                   \
    {(uint8_t *)(NAME), (uint8_t *)(VALUE), sizeof(NAME) - 1, strlen(VALUE), NGHTTP2_NV_FLAG_NONE}

int grpc_unary(grpc_channel *channel, const char *path, const char *token, const ProtobufCMessage *request,
               const ProtobufCMessageDescriptor *response_descriptor, ProtobufCMessage **response,
               grpc_status *status) {
    *response = NULL;
    size_t packed = protobuf_c_message_get_packed_size(request);
    uint8_t *frame = malloc(5 + packed);
    char *authorization = malloc(strlen(token) + 8);
    if (!frame || !authorization) {
        free(frame);
        free(authorization);
        set_status(status, GRPC_INTERNAL, "out of memory");
        return -1;
    }
    /* The length-prefixed message: not compressed, 4-byte big-endian length. */
    frame[0] = 0;
    frame[1] = (uint8_t)(packed >> 24);
    frame[2] = (uint8_t)(packed >> 16);
    frame[3] = (uint8_t)(packed >> 8);
    frame[4] = (uint8_t)packed;
    protobuf_c_message_pack(request, frame + 5);
    sprintf(authorization, "Bearer %s", token);
    char timeout[32];
    snprintf(timeout, sizeof timeout, "%dm", channel->timeout_ms);

    call_state call = {.request = frame, .request_length = 5 + packed, .grpc_status = -1};
    nghttp2_nv headers[] = {
        HEADER(":method", "POST"),
        HEADER(":scheme", "http"),
        HEADER(":path", path),
        HEADER(":authority", channel->authority),
        HEADER("content-type", "application/grpc+proto"),
        HEADER("te", "trailers"),
        HEADER("user-agent", "lumen-c-client/1.0 (protobuf-c, nghttp2)"),
        HEADER("grpc-timeout", timeout),
        HEADER("authorization", authorization),
    };
    nghttp2_data_provider body = {.source = {.ptr = &call}, .read_callback = read_request};
    int result = -1;
    call.stream_id = nghttp2_submit_request(channel->session, NULL, headers, sizeof headers / sizeof headers[0], &body,
                                            &call);
    if (call.stream_id < 0) {
        set_status(status, GRPC_INTERNAL, "cannot send the request: %s", nghttp2_strerror(call.stream_id));
        goto done;
    }
    if (run_until_closed(channel, &call, status) != 0) goto done;
    if (call.too_large) {
        set_status(status, GRPC_RESOURCE_EXHAUSTED, "the answer is larger than %u bytes", MAX_ANSWER_BYTES);
        goto done;
    }
    if (call.http_status != 200) {
        set_status(status, code_for_http(call.http_status), "HTTP status %d from %s", call.http_status,
                   channel->authority);
        goto done;
    }
    if (call.grpc_status < 0) {
        set_status(status, call.error_code ? GRPC_UNAVAILABLE : GRPC_INTERNAL,
                   call.error_code ? "the call was reset (%s)" : "the answer carried no grpc-status%s",
                   call.error_code ? nghttp2_http2_strerror(call.error_code) : "");
        goto done;
    }
    if (call.grpc_status != GRPC_OK) {
        set_status(status, call.grpc_status, "%s", call.grpc_message);
        goto done;
    }
    if (call.answer_length < 5) {
        set_status(status, GRPC_INTERNAL, "the answer carried no message");
        goto done;
    }
    size_t length = (size_t)call.answer[1] << 24 | (size_t)call.answer[2] << 16 | (size_t)call.answer[3] << 8 |
                    call.answer[4];
    if (call.answer[0] != 0) {
        set_status(status, GRPC_INTERNAL, "the answer is compressed, and no compression was offered");
        goto done;
    }
    if (5 + length != call.answer_length) {
        set_status(status, GRPC_INTERNAL, "the answer is not one message (%zu bytes framed as %zu)",
                   call.answer_length - 5, length);
        goto done;
    }
    *response = protobuf_c_message_unpack(response_descriptor, NULL, length, call.answer + 5);
    if (!*response) {
        set_status(status, GRPC_INTERNAL, "cannot decode the answer as %s", response_descriptor->name);
        goto done;
    }
    result = 0;
done:
    if (call.stream_id > 0) nghttp2_session_set_stream_user_data(channel->session, call.stream_id, NULL);
    free(call.answer);
    free(frame);
    free(authorization);
    return result;
}
