/* Text for error codes. */
#include <string.h>

#include "err.h"

const char *err_str(int code)
{
	switch (code) {
	case 0:
		return "success";
	case CAIRN_E_PROTO:
		return "malformed or unknown message";
	case CAIRN_E_VERSION:
		return "unsupported protocol version";
	case CAIRN_E_NOLEADER:
		return "No cluster leader";
	case CAIRN_E_UNAVAILABLE:
		return "daemon unavailable";
	case CAIRN_E_NOTFOUND:
		return "not found";
	case CAIRN_E_TOOLARGE:
		return "value too large";
	case CAIRN_E_BADREQ:
		return "bad request";
	case CAIRN_E_STORE:
		return "store failure";
	case CAIRN_E_CONFIG:
		return "invalid configuration";
	case CAIRN_E_NOSERVERS:
		return "No known Consul servers";
	default:
		break;
	}
	if (code < 0 && code > -1000)
		return strerror(-code);
	return "unknown error";
}
