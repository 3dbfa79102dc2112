cdef extern from "ff_debug.h":
    # A compile-time constant: `if FASTFLOW_DEBUG:` blocks vanish in release builds.
    const bint FASTFLOW_DEBUG
