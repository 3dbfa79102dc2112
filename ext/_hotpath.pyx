# fastflow._hotpath: the compiled hot path. Bytes in; C state and encoded
# per-flush outputs out. No I/O, no event loop, no logging.
#
# This root file holds only cimports and includes, in dependency order
# (cf. asyncpg protocol.pyx). Each stage lives in its own file.

cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_CheckExact, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.number cimport PyIndex_Check, PyNumber_Index
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from libc.math cimport llround
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcmp, memcpy, memset
from posix.time cimport CLOCK_REALTIME, clock_gettime, timespec

from byteorder cimport ff_load_be16, ff_load_be32, ff_load_be_i32, ff_load_le_double
from ff_debug cimport FASTFLOW_DEBUG
from msgpack_writer cimport (
    ff_buf, ff_buf_free, ff_buf_reserve, ff_mp_array_header, ff_mp_bool, ff_mp_cstr,
    ff_mp_double, ff_mp_int, ff_mp_map_header, ff_mp_nil, ff_mp_raw, ff_mp_str_header,
    ff_mp_uint,
)
from slot_state cimport *

include "broker_wire.pxi"
include "frame_error.pyx"
include "token_index.pyx"
include "tick_encoder.pyx"
include "flow_detector.pyx"
include "market_state.pyx"
include "fanout.pyx"
include "kite_decoder.pyx"
include "protobuf_reader.pyx"
include "upstox_decoder.pyx"
