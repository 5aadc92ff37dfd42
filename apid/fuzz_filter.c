/* Fuzz target for the ?filter= expression language: any bytes as an
 * expression through filter_parse(), and every parsed filter evaluated
 * against a fixed health entry. Nothing may crash, leak or recurse without
 * bound; a parse either fails with a reason or yields a filter.
 *
 * Built with -fsanitize=fuzzer it is a libFuzzer binary; linked with
 * tests/fuzz/replay_main.c it replays apid/fuzz-corpus-filter on every
 * `meson test --suite fuzz`. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "filter.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char entry[] =
	    "{\"Node\":{\"Node\":\"n1\",\"Meta\":{\"rack\":\"a\"}},"
	    "\"Service\":{\"ID\":\"web1\",\"Service\":\"web\",\"Tags\":[\"v1\",\"primary\"],"
	    "\"Port\":80,\"EnableTagOverride\":false,\"Meta\":{}},"
	    "\"Checks\":[{\"CheckID\":\"c1\",\"Status\":\"passing\"},"
	    "{\"CheckID\":\"c2\",\"Status\":\"critical\",\"Output\":\"\"}]}";
	struct filter *f;
	char *expr, err[256];
	json_t *j;
	int rc;

	expr = malloc(size + 1);
	if (!expr)
		return 0;
	memcpy(expr, data, size);
	expr[size] = '\0';
	rc = filter_parse(expr, &f, err, sizeof(err));
	if (rc == 0) {
		j = json_loads(entry, 0, NULL);
		if (j) {
			json_t *arr = json_pack("[O,O]", j, j);

			(void)filter_match(f, j);
			if (arr)
				filter_array(f, arr);
			json_decref(arr);
			json_decref(j);
		}
		filter_free(f);
	} else if (rc != -EINVAL && rc != -ENOMEM) {
		abort();
	} else if (rc == -EINVAL && err[0] == '\0') {
		abort(); /* a refusal always says why */
	}
	free(expr);
	return 0;
}
