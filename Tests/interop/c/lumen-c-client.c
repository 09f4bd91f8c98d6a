/* lumen-c-client: Lumen's RPC API from C (see usage()). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc.h"
#include "json.h"
#include "lumen/keys/v1/keys.pb-c.h"
#include "lumen/ledger/v1/ledger.pb-c.h"

static void usage(FILE *out) {
    fputs("usage: lumen-c-client HOST:PORT COMMAND [--key KEY_ID]\n"
          "\n"
          "Calls Lumen's RPC API (gRPC over HTTP/2 in cleartext, `lumen serve`'s --grpc-port) and prints\n"
          "what it got as JSON, one object per line, in the proto3 JSON mapping of the messages in\n"
          "proto/ (lowerCamelCase names, 64-bit integers as strings, enums by name, times in RFC 3339).\n"
          "\n"
          "commands:\n"
          "  list-keys             the organisation's inference keys, one Key a line (Keys.ListKeys,\n"
          "                        every page)\n"
          "  get-pool --key ID     the key's budget pool, one Pool (Ledger.GetPool)\n"
          "  list-usage --key ID   the key's usage lines, newest first, one UsageLine a line (Ledger.ListUsage,\n"
          "                        one page of up to 100)\n"
          "\n"
          "environment:\n"
          "  LUMEN_MANAGEMENT_TOKEN  the mt- token to call with (required; never taken on the command line)\n"
          "  LUMEN_RPC_TIMEOUT       seconds to wait for each answer (default 30)\n"
          "\n"
          "exit status: 0 done; 1 the call failed (its gRPC status and message on stderr); 2 usage error\n",
          out);
}

static int usage_error(const char *message) {
    fprintf(stderr, "lumen-c-client: %s\n(lumen-c-client --help for usage)\n", message);
    return 2;
}

static int failed(const grpc_status *status) {
    fprintf(stderr, "lumen-c-client: %s (%d): %s\n", grpc_code_name(status->code), status->code, status->message);
    return 1;
}

static void print_line(const ProtobufCMessage *message) {
    json_write_message(stdout, message);
    fputc('\n', stdout);
}

static int list_keys(grpc_channel *channel, const char *token) {
    Lumen__Common__V1__PageRequest page = LUMEN__COMMON__V1__PAGE_REQUEST__INIT;
    page.limit = 1000;
    Lumen__Keys__V1__ListKeysRequest request = LUMEN__KEYS__V1__LIST_KEYS_REQUEST__INIT;
    request.page = &page;
    char *page_token = NULL;
    do {
        request.page_token = page_token ? page_token : (char *)protobuf_c_empty_string;
        ProtobufCMessage *answer;
        grpc_status status;
        if (grpc_unary(channel, "/lumen.keys.v1.KeysService/ListKeys", token, &request.base,
                       &lumen__keys__v1__list_keys_response__descriptor, &answer, &status) != 0) {
            free(page_token);
            return failed(&status);
        }
        const Lumen__Keys__V1__ListKeysResponse *response = (const Lumen__Keys__V1__ListKeysResponse *)answer;
        for (size_t i = 0; i < response->n_keys; i++) print_line(&response->keys[i]->base);
        free(page_token);
        page_token = response->next_page_token && response->next_page_token[0] ? strdup(response->next_page_token)
                                                                                : NULL;
        protobuf_c_message_free_unpacked(answer, NULL);
    } while (page_token);
    return 0;
}

static int get_pool(grpc_channel *channel, const char *token, char *key_id) {
    Lumen__Common__V1__PrincipalRef owner = LUMEN__COMMON__V1__PRINCIPAL_REF__INIT;
    owner.type = LUMEN__COMMON__V1__PRINCIPAL_TYPE__PRINCIPAL_TYPE_KEY;
    owner.id = key_id;
    Lumen__Ledger__V1__GetPoolRequest request = LUMEN__LEDGER__V1__GET_POOL_REQUEST__INIT;
    request.owner = &owner;
    ProtobufCMessage *answer;
    grpc_status status;
    if (grpc_unary(channel, "/lumen.ledger.v1.LedgerService/GetPool", token, &request.base,
                   &lumen__ledger__v1__get_pool_response__descriptor, &answer, &status) != 0)
        return failed(&status);
    const Lumen__Ledger__V1__GetPoolResponse *response = (const Lumen__Ledger__V1__GetPoolResponse *)answer;
    if (response->pool) print_line(&response->pool->base);
    else puts("{}");
    protobuf_c_message_free_unpacked(answer, NULL);
    return 0;
}

static int list_usage(grpc_channel *channel, const char *token, char *key_id) {
    Lumen__Ledger__V1__UsageFilter filter = LUMEN__LEDGER__V1__USAGE_FILTER__INIT;
    filter.key_id = key_id;
    Lumen__Common__V1__PageRequest page = LUMEN__COMMON__V1__PAGE_REQUEST__INIT;
    page.limit = 100;
    Lumen__Ledger__V1__ListUsageRequest request = LUMEN__LEDGER__V1__LIST_USAGE_REQUEST__INIT;
    request.filter = &filter;
    request.page = &page;
    ProtobufCMessage *answer;
    grpc_status status;
    if (grpc_unary(channel, "/lumen.ledger.v1.LedgerService/ListUsage", token, &request.base,
                   &lumen__ledger__v1__list_usage_response__descriptor, &answer, &status) != 0)
        return failed(&status);
    const Lumen__Ledger__V1__ListUsageResponse *response = (const Lumen__Ledger__V1__ListUsageResponse *)answer;
    for (size_t i = 0; i < response->n_lines; i++) print_line(&response->lines[i]->base);
    protobuf_c_message_free_unpacked(answer, NULL);
    return 0;
}

int main(int argc, char **argv) {
    const char *target = NULL, *command = NULL;
    char *key_id = NULL;
    for (int i = 1; i < argc; i++) {
        const char *argument = argv[i];
        if (strcmp(argument, "-h") == 0 || strcmp(argument, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argument, "--key") == 0) {
            if (i + 1 >= argc) return usage_error("--key needs a key id");
            key_id = argv[++i];
        } else if (strncmp(argument, "--key=", 6) == 0) {
            key_id = (char *)argument + 6;
        } else if (argument[0] == '-' && argument[1] == '-') {
            fprintf(stderr, "lumen-c-client: unknown option %s\n", argument);
            return usage_error("options: --key KEY_ID, --help (the token comes from LUMEN_MANAGEMENT_TOKEN)");
        } else if (!target) {
            target = argument;
        } else if (!command) {
            command = argument;
        } else {
            fprintf(stderr, "lumen-c-client: unexpected argument %s\n", argument);
            return usage_error("usage: lumen-c-client HOST:PORT COMMAND [--key KEY_ID]");
        }
    }
    if (!target || !command) return usage_error("usage: lumen-c-client HOST:PORT COMMAND [--key KEY_ID]");
    int needs_key = strcmp(command, "get-pool") == 0 || strcmp(command, "list-usage") == 0;
    if (!needs_key && strcmp(command, "list-keys") != 0) {
        fprintf(stderr, "lumen-c-client: unknown command %s\n", command);
        return usage_error("commands: list-keys, get-pool --key KEY_ID, list-usage --key KEY_ID");
    }
    if (needs_key && (!key_id || !key_id[0])) {
        fprintf(stderr, "lumen-c-client: %s needs --key KEY_ID\n", command);
        return 2;
    }
    if (!needs_key && key_id) return usage_error("list-keys takes no --key");
    const char *token = getenv("LUMEN_MANAGEMENT_TOKEN");
    if (!token || !token[0]) return usage_error("set LUMEN_MANAGEMENT_TOKEN to an mt- token");
    if (strpbrk(token, "\r\n")) return usage_error("LUMEN_MANAGEMENT_TOKEN must be one line");
    int timeout_ms = 30000;
    const char *timeout = getenv("LUMEN_RPC_TIMEOUT");
    if (timeout && timeout[0]) {
        char *end;
        long seconds = strtol(timeout, &end, 10);
        if (*end || seconds <= 0 || seconds > 3600) return usage_error("LUMEN_RPC_TIMEOUT must be 1 to 3600 seconds");
        timeout_ms = (int)seconds * 1000;
    }

    grpc_channel channel;
    grpc_status status;
    if (grpc_connect(&channel, target, timeout_ms, &status) != 0) return failed(&status);
    int result = strcmp(command, "list-keys") == 0 ? list_keys(&channel, token)
                 : strcmp(command, "get-pool") == 0 ? get_pool(&channel, token, key_id)
                                                    : list_usage(&channel, token, key_id);
    grpc_close(&channel);
    if (fflush(stdout) != 0) {
        perror("lumen-c-client: stdout");
        return 1;
    }
    return result;
}
