/*
 * loop/error.c: cio_strerror() and cio_err_name(), generated from the
 * CIO_ERRNO_MAP table for coreio's own codes and from glibc for errno values.
 */
#include <limits.h>
#include <string.h>

#include "internal.h"

const char *cio_strerror(int err)
{
    switch (err) {
#define CIO__ERRNO_MSG(name, value, msg)                                                           \
    case value:                                                                                    \
        return msg;
        CIO_ERRNO_MAP(CIO__ERRNO_MSG)
#undef CIO__ERRNO_MSG
    case 0:
        return "success";
    }
    const char *desc = err < 0 && err != INT_MIN ? strerrordesc_np(-err) : NULL;
    return desc ? desc : "unknown error";
}

const char *cio_err_name(int err)
{
    switch (err) {
#define CIO__ERRNO_NAME(name, value, msg)                                                          \
    case value:                                                                                    \
        return "CIO_E" #name;
        CIO_ERRNO_MAP(CIO__ERRNO_NAME)
#undef CIO__ERRNO_NAME
    case 0:
        return "0";
    }
    const char *name = err < 0 && err != INT_MIN ? strerrorname_np(-err) : NULL;
    return name ? name : "unknown";
}
