/* Query name forms of the .consul domain; see dns_name.h. */
#include "dns_name.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <strings.h>

/* At most 127 labels fit in 255 wire octets. */
#define MAX_LABELS 128

struct label {
	const char *p;
	size_t len;
};

/* Splits text into labels at unescaped dots ("\\." and "\\046" stay inside a
 * label, counting as one octet). A single trailing dot is dropped; an empty
 * name has no labels. Checks the label and name lengths in octets (RFC 1035
 * 2.3.4). Returns the label count or -EINVAL. */
static int split_labels(const char *s, struct label *out, size_t max)
{
	size_t len = strlen(s);
	size_t n = 0, start = 0, i = 0;
	size_t octets = 0, total = 0; /* of this label, of the name */

	if (len == 0 || (len == 1 && s[0] == '.'))
		return 0; /* the root */
	while (i <= len) {
		if (i == len || s[i] == '.') {
			size_t l = i - start;

			if (i == len && l == 0 && n > 0)
				break; /* trailing dot */
			if (l == 0 || octets > DNS_NAME_LABEL_MAX || n == max)
				return -EINVAL;
			total += octets + (n > 0);
			if (total > DNS_NAME_TEXT_MAX)
				return -EINVAL;
			out[n].p = s + start;
			out[n].len = l;
			n++;
			octets = 0;
			start = i + 1;
			i++;
			continue;
		}
		if (s[i] == '\\') {
			/* \DDD or \X: one octet of the label */
			if (isdigit((unsigned char)s[i + 1]) && isdigit((unsigned char)s[i + 2]) &&
			    isdigit((unsigned char)s[i + 3]))
				i += 4;
			else if (s[i + 1] != '\0')
				i += 2;
			else
				return -EINVAL;
		} else {
			i++;
		}
		octets++;
	}
	return (int)n;
}

static bool label_eq(const struct label *l, const char *word)
{
	return strlen(word) == l->len && strncasecmp(l->p, word, l->len) == 0;
}

static bool labels_eq(const struct label *a, const struct label *b)
{
	return a->len == b->len && strncasecmp(a->p, b->p, a->len) == 0;
}

/* Letters, digits, '-' and '_' only (Consul's InvalidDnsRe plus '_', which
 * RFC 2782 service names need). */
static bool label_ok(const struct label *l)
{
	for (size_t i = 0; i < l->len; i++) {
		unsigned char c = (unsigned char)l->p[i];

		if (!isalnum(c) && c != '-' && c != '_')
			return false;
	}
	return true;
}

/* Joins labels [from, to) with dots into buf (size DNS_NAME_TEXT_MAX + 1;
 * the whole name fits by construction). */
static void join(const struct label *ls, size_t from, size_t to, char *buf)
{
	size_t pos = 0;

	for (size_t i = from; i < to; i++) {
		if (i > from)
			buf[pos++] = '.';
		memcpy(buf + pos, ls[i].p, ls[i].len);
		pos += ls[i].len;
	}
	buf[pos] = '\0';
}

static void copy_label(const struct label *l, size_t skip, char *buf, bool lower)
{
	size_t n = l->len - skip;

	for (size_t i = 0; i < n; i++) {
		char c = l->p[skip + i];

		buf[i] = lower ? (char)tolower((unsigned char)c) : c;
	}
	buf[n] = '\0';
}

static enum dns_name_kind type_label(const struct label *l)
{
	if (label_eq(l, "node"))
		return DNS_NAME_NODE;
	if (label_eq(l, "service"))
		return DNS_NAME_SERVICE;
	if (label_eq(l, "connect"))
		return DNS_NAME_CONNECT;
	if (label_eq(l, "ingress"))
		return DNS_NAME_INGRESS;
	if (label_eq(l, "addr"))
		return DNS_NAME_ADDR;
	if (label_eq(l, "query"))
		return DNS_NAME_QUERY;
	return DNS_NAME_FOREIGN;
}

/* Number of labels of name that are the domain, or 0 when name is not
 * inside it. */
static size_t match_domain(const struct label *ls, size_t n, const char *domain)
{
	struct label dl[MAX_LABELS];
	int dn;

	if (!domain)
		return 0;
	dn = split_labels(domain, dl, MAX_LABELS);
	if (dn <= 0 || (size_t)dn > n)
		return 0;
	for (int i = 1; i <= dn; i++)
		if (!labels_eq(&ls[n - (size_t)i], &dl[dn - i]))
			return 0;
	return (size_t)dn;
}

static bool is_hex_addr(const struct label *l)
{
	if (l->len != 8 && l->len != 32)
		return false;
	for (size_t i = 0; i < l->len; i++)
		if (!isxdigit((unsigned char)l->p[i]))
			return false;
	return true;
}

/* Fills r from the labels before the domain (n > 0, all valid). */
static void classify(const struct label *ls, size_t n, struct dns_name *r)
{
	size_t t; /* index of the type label */
	enum dns_name_kind kind;

	r->kind = DNS_NAME_UNKNOWN;
	if ((kind = type_label(&ls[n - 1])) != DNS_NAME_FOREIGN) {
		t = n - 1;
	} else if (n >= 2 && (kind = type_label(&ls[n - 2])) != DNS_NAME_FOREIGN) {
		t = n - 2;
		copy_label(&ls[n - 1], 0, r->dc, true);
	} else if (n >= 3 && label_eq(&ls[n - 1], "dc") &&
		   (kind = type_label(&ls[n - 3])) != DNS_NAME_FOREIGN) {
		t = n - 3;
		copy_label(&ls[n - 2], 0, r->dc, true);
	} else {
		return;
	}
	if (t == 0)
		return; /* "node.consul": no name before the type */

	switch (kind) {
	case DNS_NAME_NODE:
	case DNS_NAME_QUERY:
		join(ls, 0, t, r->target);
		break;
	case DNS_NAME_SERVICE:
		if (t == 2 && ls[0].p[0] == '_' && ls[1].p[0] == '_' && ls[0].len > 1 &&
		    ls[1].len > 1) {
			r->rfc2782 = true;
			copy_label(&ls[0], 1, r->target, false);
			copy_label(&ls[1], 1, r->tag, false);
			/* _<service>._tcp means "any tag", as in Consul */
			if (strcasecmp(r->tag, "tcp") == 0)
				r->tag[0] = '\0';
		} else {
			copy_label(&ls[t - 1], 0, r->target, false);
			join(ls, 0, t - 1, r->tag);
		}
		break;
	case DNS_NAME_CONNECT:
	case DNS_NAME_INGRESS:
		if (t != 1)
			return;
		copy_label(&ls[0], 0, r->target, false);
		break;
	case DNS_NAME_ADDR:
		if (t != 1 || !is_hex_addr(&ls[0]))
			return;
		copy_label(&ls[0], 0, r->target, true);
		break;
	default:
		return;
	}
	r->kind = kind;
}

int dns_name_parse(const char *qname, const char *domain, const char *alt_domain,
		   struct dns_name *out)
{
	struct label ls[MAX_LABELS];
	struct dns_name r;
	size_t dn;
	int n;

	n = split_labels(qname, ls, MAX_LABELS);
	if (n < 0)
		return n;

	memset(&r, 0, sizeof(r));
	r.kind = DNS_NAME_FOREIGN;
	dn = match_domain(ls, (size_t)n, domain);
	if (dn == 0) {
		dn = match_domain(ls, (size_t)n, alt_domain);
		r.alt = dn > 0;
	}
	if (dn == 0) {
		*out = r;
		return 0;
	}
	for (size_t i = 0; i < (size_t)n - dn; i++)
		if (!label_ok(&ls[i]))
			return -EINVAL;
	if ((size_t)n == dn)
		r.kind = DNS_NAME_APEX;
	else
		classify(ls, (size_t)n - dn, &r);
	*out = r;
	return 0;
}

const char *dns_name_kind_str(enum dns_name_kind kind)
{
	switch (kind) {
	case DNS_NAME_FOREIGN:
		return "foreign";
	case DNS_NAME_APEX:
		return "apex";
	case DNS_NAME_NODE:
		return "node";
	case DNS_NAME_SERVICE:
		return "service";
	case DNS_NAME_CONNECT:
		return "connect";
	case DNS_NAME_INGRESS:
		return "ingress";
	case DNS_NAME_ADDR:
		return "addr";
	case DNS_NAME_QUERY:
		return "query";
	case DNS_NAME_UNKNOWN:
		return "unknown";
	}
	return "unknown";
}
