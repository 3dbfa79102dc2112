/* FASTFLOW_DEBUG is 0 in release builds; setup.py defines it to 1 when the
 * FASTFLOW_DEBUG environment variable is set (cf. uvloop includes/debug.h). */
#ifndef FASTFLOW_DEBUG
#define FASTFLOW_DEBUG 0
#endif
