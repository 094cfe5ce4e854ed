/* gRPC server reflection (grpc.reflection.v1alpha and v1, which share their
 * wire format): answers list_services, file_by_filename and
 * file_containing_symbol from the descriptor sets generated at build time
 * (the gateway's API and the standard health and reflection protos), each
 * file returned with its dependencies so that a client without .proto files
 * can call every method. Immutable after creation, so any thread may use it. */
#ifndef WG_SERVER_REFLECTION_H
#define WG_SERVER_REFLECTION_H

#include <stddef.h>
#include <stdint.h>

#include <grpc/byte_buffer.h>

typedef struct reflection reflection_t;

/* Builds the index from the embedded descriptor sets. Returns 0, or -1 with
 * a message in err. */
int reflection_new(reflection_t **out, char *err, size_t errlen);

/* Frees the index. NULL is ignored. */
void reflection_free(reflection_t *r);

/* Answers one ServerReflectionRequest (req[0..len)). On success returns 0
 * and a new byte buffer holding the ServerReflectionResponse (caller
 * destroys it); unknown names are answered with an error_response
 * (NOT_FOUND). Returns -1 when the request does not decode. */
int reflection_answer(const reflection_t *r, int v1, const uint8_t *req, size_t len,
                      grpc_byte_buffer **out);

/* The number of services listed (for tests). */
size_t reflection_service_count(const reflection_t *r);

#endif
