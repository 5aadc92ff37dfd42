/* Project error codes and their text: 0 is success, negative is failure.
 *
 * Functions return -errno where one fits (-ENOMEM, -EINVAL, -EAGAIN,
 * -ETIMEDOUT) and one of the codes below, all under -1000, for conditions
 * errno has no word for. err_str() names either kind. */
#ifndef CAIRN_ERR_H
#define CAIRN_ERR_H

enum cairn_err {
	CAIRN_E_PROTO = -1001,       /* malformed or unknown message */
	CAIRN_E_VERSION = -1002,     /* protocol version we do not speak */
	CAIRN_E_NOLEADER = -1003,    /* no cluster leader known */
	CAIRN_E_UNAVAILABLE = -1004, /* the daemon we must ask is not running */
	CAIRN_E_NOTFOUND = -1005,    /* the named object does not exist */
	CAIRN_E_TOOLARGE = -1006,    /* a value or body over its limit */
	CAIRN_E_BADREQ = -1007,      /* a well-formed request we refuse */
	CAIRN_E_STORE = -1008,       /* the durable store failed */
	CAIRN_E_CONFIG = -1009,      /* invalid configuration */
	CAIRN_E_NOSERVERS = -1010,   /* a client agent knows no server */
};

/* Text for a negative code (project or -errno). Static storage. */
const char *err_str(int code);

#endif
