/* libFuzzer target for the gRPC request decoders: every request message of
 * the gateway, health and reflection services is decoded from the same
 * bytes (and re-encoded when it decodes); nothing may crash. */
#include <stdint.h>
#include <stdlib.h>

#include "grpc/health/v1/health.pb-c.h"
#include "grpc/reflection/v1alpha/reflection.pb-c.h"
#include "proto/gateway.pb-c.h"

static const ProtobufCMessageDescriptor *const descs[] = {
    &wagateway__v1__get_status_request__descriptor,
    &wagateway__v1__get_qrrequest__descriptor,
    &wagateway__v1__reconnect_request__descriptor,
    &wagateway__v1__logout_request__descriptor,
    &wagateway__v1__watch_status_request__descriptor,
    &wagateway__v1__pairing_code_request__descriptor,
    &grpc__health__v1__health_check_request__descriptor,
    &grpc__reflection__v1alpha__server_reflection_request__descriptor,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (size_t i = 0; i < sizeof(descs) / sizeof(descs[0]); i++) {
        ProtobufCMessage *m = protobuf_c_message_unpack(descs[i], NULL, size, data);
        if (!m)
            continue;
        size_t n = protobuf_c_message_get_packed_size(m);
        uint8_t *buf = malloc(n ? n : 1);
        if (buf)
            protobuf_c_message_pack(m, buf);
        free(buf);
        protobuf_c_message_free_unpacked(m, NULL);
    }
    return 0;
}
