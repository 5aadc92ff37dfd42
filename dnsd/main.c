/* cairn-dnsd: the DNS interface (UDP and TCP on client_addr:ports.dns).
 * Only wiring: configuration, the loop, the RPC client to raftd, the
 * query dispatcher and the two transports. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "config.h"
#include "daemon.h"
#include "dns_server.h"
#include "dns_tcp.h"
#include "dns_udp.h"
#include "err.h"
#include "log.h"
#include "loop.h"
#include "rpc.h"
#include "server_proxy.h"

/* client_addr may list several addresses, space-separated (Consul). */
#define DNS_MAX_ADDRS 8

/* Stub resolvers give up after a few seconds; answer SERVFAIL before. */
#define DNS_RPC_TIMEOUT_MS 2000
#define DNS_MAX_PENDING 4096
#define DNS_MAX_RECURSORS 16

/* dns_config.enable_additional_node_meta_txt (Consul's name; default
 * true): an option only dnsd reads, so it comes from the merged JSON. */
static bool node_meta_txt(const struct config *cfg)
{
	json_t *dns = cfg->json ? json_object_get(cfg->json, "dns_config") : NULL;
	json_t *v = dns ? json_object_get(dns, "enable_additional_node_meta_txt") : NULL;

	return v && json_is_boolean(v) ? json_is_true(v) : true;
}

/* dns_config.service_ttl: {"name": "5s", "prefix*": "1s", "*": "3s"}, as
 * rules for dns_service_ttl(), borrowing the keys from the merged JSON
 * (matched case-insensitively); entries that are not durations are
 * skipped with a warning (config.c has checked "*" already). Returns the
 * count; *out is malloc'd (NULL when none). */
static size_t service_ttl_rules(const struct config *cfg, struct dns_ttl_rule **out)
{
	json_t *dns = cfg->json ? json_object_get(cfg->json, "dns_config") : NULL;
	json_t *st = dns ? json_object_get(dns, "service_ttl") : NULL;
	struct dns_ttl_rule *v;
	const char *key;
	json_t *val;
	size_t n = 0;

	*out = NULL;
	if (!json_is_object(st) || json_object_size(st) == 0)
		return 0;
	v = calloc(json_object_size(st), sizeof(*v));
	if (!v)
		return 0;
	json_object_foreach(st, key, val)
	{
		uint64_t ms;

		if (!json_is_string(val) || config_duration_ms(json_string_value(val), &ms) < 0) {
			log_warn("dns_config.service_ttl.%s: not a duration, ignored", key);
			continue;
		}
		v[n].pattern = key;
		v[n].ttl_s = (uint32_t)(ms / 1000);
		n++;
	}
	*out = v;
	return n;
}

/* dns_config.recursor_timeout (Consul's default 2s). */
static uint64_t recursor_timeout_ms(const struct config *cfg)
{
	json_t *dns = cfg->json ? json_object_get(cfg->json, "dns_config") : NULL;
	json_t *v = dns ? json_object_get(dns, "recursor_timeout") : NULL;
	uint64_t ms;

	if (json_is_string(v) && config_duration_ms(json_string_value(v), &ms) == 0 && ms > 0)
		return ms;
	return 2000;
}

/* dns_config.use_cache (Consul's name, default false). */
static bool use_cache(const struct config *cfg)
{
	json_t *dns = cfg->json ? json_object_get(cfg->json, "dns_config") : NULL;
	json_t *v = dns ? json_object_get(dns, "use_cache") : NULL;

	return v && json_is_true(v);
}

/* dns_config.cache_max_age (Consul's name, default 0: no bound). */
static uint64_t cache_max_age_ms(const struct config *cfg)
{
	json_t *dns = cfg->json ? json_object_get(cfg->json, "dns_config") : NULL;
	json_t *v = dns ? json_object_get(dns, "cache_max_age") : NULL;
	uint64_t ms;

	if (json_is_string(v) && config_duration_ms(json_string_value(v), &ms) == 0)
		return ms;
	if (v)
		log_warn("dns_config.cache_max_age: not a duration, ignored");
	return 0;
}

int main(int argc, char **argv)
{
	struct dns_ttl_rule *ttl_rules = NULL;
	size_t n_ttl_rules = 0;
	struct sockaddr_storage rec[DNS_MAX_RECURSORS];
	socklen_t rec_len[DNS_MAX_RECURSORS];
	size_t n_rec = 0;
	struct config cfg = {0};
	struct loop *l = NULL;
	void *zctx = NULL;
	struct rpc_client *rpc = NULL;
	struct server_proxy *proxy = NULL;
	struct dns_server *srv = NULL;
	struct dns_udp *udp[DNS_MAX_ADDRS] = {0};
	struct dns_tcp *tcp[DNS_MAX_ADDRS] = {0};
	char addrs[512], *save = NULL, *addr;
	size_t n_addrs = 0;
	char err[512];
	char endpoint[512];
	int rc;

	if (daemon_config("cairn-dnsd", argc, argv, &cfg) < 0)
		return 2;
	if (cfg.ports.dns <= 0) {
		log_info("DNS disabled (ports.dns = %d)", cfg.ports.dns);
		rc = 0;
		goto out;
	}

	rc = daemon_loop(&l, &zctx);
	if (rc < 0)
		goto out;
	/* servers: the local raftd; client agents: a relay to a server */
	rc = server_proxy_endpoint(l, zctx, &cfg, &proxy, endpoint, sizeof(endpoint), err,
				   sizeof(err));
	if (rc < 0) {
		log_error("%s", err);
		goto out;
	}
	rc = -ENOMEM;
	rpc = rpc_client_new(l, zctx, endpoint);
	if (!rpc) {
		log_error("cannot connect to raftd at %s", endpoint);
		goto out;
	}
	n_ttl_rules = service_ttl_rules(&cfg, &ttl_rules);
	for (size_t i = 0; cfg.recursors && cfg.recursors[i]; i++) {
		if (n_rec == DNS_MAX_RECURSORS) {
			log_warn("recursors: only the first %d are used", DNS_MAX_RECURSORS);
			break;
		}
		if (dns_recursor_parse(cfg.recursors[i], &rec[n_rec], &rec_len[n_rec]) < 0) {
			log_warn("recursor %s: not an IP address (and port), ignored",
				 cfg.recursors[i]);
			continue;
		}
		n_rec++;
	}
	srv = dns_server_new(rpc, &(struct dns_server_cfg){
				      .answer =
					  {
					      .domain = cfg.domain,
					      .alt_domain = cfg.alt_domain,
					      .node_ttl_s = cfg.dns.node_ttl_s,
					      .soa_min_ttl_s = cfg.dns.soa_min_ttl_s,
					      .enable_truncate = cfg.dns.enable_truncate,
					      .node_meta_txt = node_meta_txt(&cfg),
					      .datacenter = cfg.datacenter,
					      .service_ttl_s = cfg.dns.service_ttl_s,
					      .service_ttls = ttl_rules,
					      .n_service_ttls = n_ttl_rules,
					      .udp_answer_limit = cfg.dns.udp_answer_limit,
					      .a_record_limit = cfg.dns.a_record_limit,
					      .recurse = n_rec > 0,
					  },
				      .only_passing = cfg.dns.only_passing,
				      .loop = l,
				      .recursors = rec,
				      .recursor_lens = rec_len,
				      .n_recursors = n_rec,
				      .recursor_timeout_ms = recursor_timeout_ms(&cfg),
				      .allow_stale = cfg.dns.allow_stale,
				      .max_stale_ms = cfg.dns.max_stale_ms,
				      .rpc_timeout_ms = DNS_RPC_TIMEOUT_MS,
				      .max_pending = DNS_MAX_PENDING,
				      /* Stale reads allowed (Consul's default) or
				       * use_cache: answers come from the local
				       * cache, kept current by blocking queries.
				       * Without either, every query reads raftd
				       * (Consul's use_cache=false, allow_stale=false). */
				      .use_cache = cfg.dns.allow_stale || use_cache(&cfg),
				      .cache_max_age_ms = cache_max_age_ms(&cfg),
				  });
	if (!srv) {
		log_error("out of memory");
		goto out;
	}
	rc = -EADDRNOTAVAIL;
	snprintf(addrs, sizeof(addrs), "%s", cfg.client_addr ? cfg.client_addr : "127.0.0.1");
	for (addr = strtok_r(addrs, " \t", &save); addr; addr = strtok_r(NULL, " \t", &save)) {
		if (n_addrs == DNS_MAX_ADDRS) {
			log_error("client_addr: more than %d addresses", DNS_MAX_ADDRS);
			goto out;
		}
		udp[n_addrs] = dns_udp_open(l, srv, addr, cfg.ports.dns, err, sizeof(err));
		if (udp[n_addrs])
			tcp[n_addrs] = dns_tcp_open(l, srv, addr, cfg.ports.dns, err, sizeof(err));
		n_addrs++;
		if (!tcp[n_addrs - 1]) {
			log_error("%s", err);
			goto out;
		}
	}
	if (n_addrs == 0) {
		log_error("client_addr is empty");
		goto out;
	}
	log_info("serving DNS for %s on %s port %d (udp, tcp); catalog from %s", cfg.domain,
		 cfg.client_addr, cfg.ports.dns, endpoint);
	daemon_notify_ready();
	rc = loop_run(l);
	daemon_notify_stopping();
	{
		struct dns_server_stats st;

		dns_server_stats(srv, &st);
		log_info("dns: %llu queries; %llu answered from the cache (%llu stale), %llu as "
			 "stored replies, %llu waited for a fetch; %llu fetches",
			 (unsigned long long)st.queries, (unsigned long long)st.cache_hits,
			 (unsigned long long)st.cache_stale, (unsigned long long)st.wire_reused,
			 (unsigned long long)st.cache_waits, (unsigned long long)st.fetches);
	}
	if (rc < 0)
		log_error("event loop: %s", err_str(rc));
out:
	for (size_t i = 0; i < n_addrs; i++) {
		dns_tcp_close(tcp[i]);
		dns_udp_close(udp[i]);
	}
	dns_server_free(srv);
	free(ttl_rules);
	rpc_client_free(rpc);
	server_proxy_free(proxy);
	if (zctx)
		zmq_ctx_term(zctx);
	loop_free(l);
	config_close(&cfg);
	return rc < 0 ? 1 : 0;
}
