/* Fuzz target: proto_decode on arbitrary bytes, then re-encode what
 * decoded and check the result decodes to the same type and id. */
#include <stdint.h>
#include <stdlib.h>

#include "arena.h"
#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct arena a;
	struct proto_msg m, again;
	uint8_t *buf = NULL;
	size_t len = 0;

	arena_init(&a, 0);
	if (proto_decode(data, size, &a, &m, NULL, 0) == 0 && proto_encode(&m, &buf, &len) == 0) {
		if (proto_decode(buf, len, &a, &again, NULL, 0) != 0 || again.type != m.type ||
		    again.id != m.id)
			abort();
		free(buf);
	}
	arena_close(&a);
	return 0;
}
