/* The CLI's HTTP client (see client.h). */
#include "client.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct client {
	CURL *curl;
	char *base;
	char *token_header; /* "X-Consul-Token: ..." or NULL */
	char *dc_escaped;   /* or NULL */
};

struct client *client_new(const char *base, const char *token, const char *datacenter)
{
	struct client *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	/* curl_global_init is implied by the first curl_easy_init. */
	c->curl = curl_easy_init();
	c->base = strdup(base);
	if (!c->curl || !c->base)
		goto fail;
	if (token) {
		size_t n = strlen(token) + sizeof("X-Consul-Token: ");

		c->token_header = malloc(n);
		if (!c->token_header)
			goto fail;
		snprintf(c->token_header, n, "X-Consul-Token: %s", token);
	}
	if (datacenter) {
		c->dc_escaped = client_escape_key(datacenter);
		if (!c->dc_escaped)
			goto fail;
	}
	return c;
fail:
	client_free(c);
	return NULL;
}

void client_free(struct client *c)
{
	if (!c)
		return;
	if (c->curl)
		curl_easy_cleanup(c->curl);
	free(c->base);
	free(c->token_header);
	free(c->dc_escaped);
	free(c);
}

struct sink {
	char *buf;
	size_t len;
	size_t cap;
	int oom;
};

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct sink *s = ud;
	size_t n = size * nmemb;

	if (s->len + n + 1 > s->cap) {
		size_t cap = s->cap ? s->cap : 4096;
		char *nb;

		while (cap < s->len + n + 1)
			cap *= 2;
		nb = realloc(s->buf, cap);
		if (!nb) {
			s->oom = 1;
			return 0; /* makes curl fail the transfer */
		}
		s->buf = nb;
		s->cap = cap;
	}
	memcpy(s->buf + s->len, ptr, n);
	s->len += n;
	s->buf[s->len] = '\0';
	return n;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *ud)
{
	uint64_t *index = ud;
	size_t n = size * nmemb;
	static const char name[] = "X-Consul-Index:";

	if (n > sizeof(name) - 1 && strncasecmp(ptr, name, sizeof(name) - 1) == 0) {
		uint64_t v = 0;

		for (size_t i = sizeof(name) - 1; i < n; i++) {
			if (ptr[i] >= '0' && ptr[i] <= '9')
				v = v * 10 + (uint64_t)(ptr[i] - '0');
			else if (ptr[i] != ' ')
				break;
		}
		*index = v;
	}
	return n;
}

int client_request(struct client *c, const char *method, const char *path, const char *query,
		   const void *body, size_t body_len, struct client_resp *out, char *err,
		   size_t errlen)
{
	struct sink sink = {0};
	struct curl_slist *hdrs = NULL;
	uint64_t index = 0;
	char *url = NULL;
	size_t url_len;
	long status = 0;
	CURLcode cc;
	int rc = -EIO;
	bool has_q = query && *query;

	url_len = strlen(c->base) + strlen(path) + (has_q ? strlen(query) : 0) +
		  (c->dc_escaped ? strlen(c->dc_escaped) : 0) + 16;
	url = malloc(url_len);
	if (!url) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	snprintf(url, url_len, "%s/v1/%s%s%s%s%s", c->base, path,
		 (has_q || c->dc_escaped) ? "?" : "", has_q ? query : "",
		 (has_q && c->dc_escaped) ? "&" : "", c->dc_escaped ? "dc=" : "");
	if (c->dc_escaped)
		strcat(url, c->dc_escaped);

	curl_easy_reset(c->curl);
	curl_easy_setopt(c->curl, CURLOPT_URL, url);
	curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &sink);
	curl_easy_setopt(c->curl, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c->curl, CURLOPT_HEADERDATA, &index);
	curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	curl_easy_setopt(c->curl, CURLOPT_USERAGENT, "cairn/" CAIRN_VERSION);
	if (strcmp(method, "PUT") == 0 || strcmp(method, "POST") == 0 ||
	    (strcmp(method, "DELETE") == 0 && body)) { /* DELETE operator/keyring has one */
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body ? (const char *)body : "");
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
		/* No "Expect: 100-continue" round trip for large values. */
		hdrs = curl_slist_append(hdrs, "Expect:");
		if (!hdrs)
			goto oom;
	} else if (strcmp(method, "HEAD") == 0) {
		curl_easy_setopt(c->curl, CURLOPT_NOBODY, 1L);
	}
	if (c->token_header) {
		struct curl_slist *h = curl_slist_append(hdrs, c->token_header);

		if (!h)
			goto oom;
		hdrs = h;
	}
	if (hdrs)
		curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, hdrs);

	cc = curl_easy_perform(c->curl);
	if (sink.oom)
		goto oom;
	if (cc != CURLE_OK) {
		snprintf(err, errlen, "%s %s: %s", method, url, curl_easy_strerror(cc));
		goto out;
	}
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
	if (!sink.buf) {
		sink.buf = calloc(1, 1);
		if (!sink.buf)
			goto oom;
	}
	out->status = status;
	out->body = sink.buf;
	out->len = sink.len;
	out->index = index;
	sink.buf = NULL;
	rc = 0;
	goto out;
oom:
	snprintf(err, errlen, "out of memory");
	rc = -ENOMEM;
out:
	curl_slist_free_all(hdrs);
	free(sink.buf);
	free(url);
	return rc;
}

void client_resp_close(struct client_resp *r)
{
	free(r->body);
	r->body = NULL;
	r->len = 0;
}

char *client_escape_key(const char *key)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(key);
	char *out = malloc(n * 3 + 1);
	char *p = out;

	if (!out)
		return NULL;
	for (const unsigned char *s = (const unsigned char *)key; *s; s++) {
		if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		    (*s >= '0' && *s <= '9') || strchr("-._~/", *s)) {
			*p++ = (char)*s;
		} else {
			*p++ = '%';
			*p++ = hex[*s >> 4];
			*p++ = hex[*s & 15];
		}
	}
	*p = '\0';
	return out;
}
