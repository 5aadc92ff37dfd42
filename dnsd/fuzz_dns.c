/* Fuzz target for DNS query handling: any bytes through dns_query_parse()
 * and dns_answer_build(), over UDP and TCP size rules, with a found node,
 * an unknown node and a failed lookup.
 *
 * Built with -fsanitize=fuzzer it is a libFuzzer binary; linked with
 * tests/fuzz/replay_main.c it runs every file of the directories
 * (or files) named on the command line, so the corpus is replayed by
 * `meson test --suite fuzz` on every build. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dns_answer.h"
#include "err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct dns_answer_cfg fuzz_cfg = {
    .domain = "consul.",
    .alt_domain = "cairn.example.",
    .node_ttl_s = 5,
    .soa_min_ttl_s = 0,
    .enable_truncate = true,
    .node_meta_txt = true,
    .datacenter = "dc1",
    .service_ttl_s = 0,
    .udp_answer_limit = 3,
    .a_record_limit = 0,
};

static const struct dns_instance instances[] = {
    {.node = "n1", .node_address = "10.0.0.1", .address = "", .port = 80},
    {.node = "n2", .node_address = "10.0.0.2", .address = "2001:db8::2", .port = 81},
    {.node = "n3", .node_address = "10.0.0.3", .address = "svc.example", .port = 82},
    {.node = "n_4", .node_address = "10.0.0.1", .address = NULL, .port = 83},
};

static const char *const meta_keys[] = {"consul-network-segment", " a=`b ", "rfc1035-x"};
static const char *const meta_vals[] = {"", "v`", "raw"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct dns_node_result results[] = {
	    {.status = 0,
	     .address = "127.0.0.1",
	     .meta_keys = meta_keys,
	     .meta_vals = meta_vals,
	     .n_meta = 3},
	    {.status = 0, .address = "2001:db8::1"},
	    {.status = 0, .address = "host.example"},
	    {.status = CAIRN_E_NOTFOUND, .address = NULL},
	    {.status = -ETIMEDOUT, .address = NULL},
	};
	struct dns_query q;
	enum dns_action act = dns_query_parse(&q, data, size, &fuzz_cfg);

	for (size_t i = 0; i < sizeof(results) / sizeof(results[0]); i++) {
		uint8_t *wire = NULL;
		size_t len = 0;

		if (act == DNS_ACT_DROP)
			break;
		struct dns_service_result svc = {
		    .status = results[i].status,
		    .v = instances,
		    .n = results[i].status == 0 ? sizeof(instances) / sizeof(instances[0]) : 0,
		};

		if (act == DNS_ACT_PTR) {
			static const char *const names[] = {"n1", "bad name", "n_3"};
			struct dns_ptr_result ptr = {.status = results[i].status,
						     .nodes = names,
						     .n = results[i].status == 0 ? 3 : 0};

			if (dns_answer_build_ptr(&q, &ptr, &fuzz_cfg, 1700000000, i % 2 == 0, &wire,
						 &len) == 0) {
				if (len > 65535 || (i % 2 == 0 && len > q.udp_limit))
					abort();
				free(wire);
			}
			continue;
		}
		if (dns_answer_build(&q, act == DNS_ACT_NODE ? &results[i] : NULL,
				     act == DNS_ACT_SERVICE ? &svc : NULL, &fuzz_cfg, 1700000000,
				     i % 2 == 0, &wire, &len) == 0) {
			if (len > 65535 || (i % 2 == 0 && len > q.udp_limit))
				abort(); /* an answer over its size limit is a bug */
			free(wire);
		}
		if (act != DNS_ACT_NODE && act != DNS_ACT_SERVICE && act != DNS_ACT_PTR && i > 0)
			break;
	}
	dns_query_close(&q);
	return 0;
}
