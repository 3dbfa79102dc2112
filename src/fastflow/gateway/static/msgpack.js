/* A small, complete MessagePack codec for the fastflow dashboard (no dependencies,
 * works offline). https://github.com/msgpack/msgpack/blob/master/spec.md
 *
 *   FastflowMsgpack.decode(bytes)  -> value   (ArrayBuffer, Uint8Array or any ArrayBufferView)
 *   FastflowMsgpack.encode(value)  -> Uint8Array
 *
 * Decoding: maps become plain objects (keys as strings), arrays arrays, str strings
 * (UTF-8), bin Uint8Array, nil null, ints and floats Numbers. 64-bit ints become Numbers
 * (exact up to 2^53; beyond that the nearest double: a nanosecond timestamp loses at
 * most a few hundred ns). The timestamp extension (-1) becomes a Date; any other ext
 * becomes {extType, data: Uint8Array}. Truncated input, the never-used byte 0xc1,
 * trailing bytes and nesting deeper than MAX_DEPTH throw a MsgpackError.
 *
 * Encoding: null/undefined -> nil, booleans, integers in the smallest form (as
 * msgpack-python does; integral Numbers up to 2^64 included), other numbers float64,
 * BigInt int64/uint64, strings str, arrays, Uint8Array/ArrayBuffer bin, Maps and plain
 * objects maps (undefined values skipped).
 */
(function (root) {
  "use strict";

  var MAX_DEPTH = 512;
  var TWO_32 = 4294967296;
  var utf8Decoder = new TextDecoder("utf-8");
  var utf8Encoder = new TextEncoder();

  function MsgpackError(message, offset) {
    var error = new Error(message + " at byte " + offset);
    error.name = "MsgpackError";
    error.offset = offset;
    return error;
  }

  function asBytes(input) {
    if (input instanceof Uint8Array) return input;
    if (input instanceof ArrayBuffer) return new Uint8Array(input);
    if (ArrayBuffer.isView(input)) return new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
    throw new TypeError("msgpack decode takes an ArrayBuffer or a typed array");
  }

  function Decoder(bytes) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = 0;
  }

  Decoder.prototype.need = function (n) {
    if (this.pos + n > this.bytes.length) throw MsgpackError("truncated msgpack value", this.pos);
  };

  Decoder.prototype.u8 = function () {
    this.need(1);
    return this.bytes[this.pos++];
  };
  Decoder.prototype.u16 = function () {
    this.need(2);
    var v = this.view.getUint16(this.pos);
    this.pos += 2;
    return v;
  };
  Decoder.prototype.u32 = function () {
    this.need(4);
    var v = this.view.getUint32(this.pos);
    this.pos += 4;
    return v;
  };
  Decoder.prototype.u64 = function () {
    this.need(8);
    var v = this.view.getUint32(this.pos) * TWO_32 + this.view.getUint32(this.pos + 4);
    this.pos += 8;
    return v;
  };
  Decoder.prototype.i64 = function () {
    this.need(8);
    var v = this.view.getInt32(this.pos) * TWO_32 + this.view.getUint32(this.pos + 4);
    this.pos += 8;
    return v;
  };

  Decoder.prototype.str = function (n) {
    this.need(n);
    var bytes = this.bytes, start = this.pos, end = start + n;
    this.pos = end;
    if (n <= 32) {  // short keys and symbols: skip TextDecoder's call overhead when ASCII
      var out = "";
      for (var i = start; i < end; i++) {
        var c = bytes[i];
        if (c > 0x7f) return utf8Decoder.decode(bytes.subarray(start, end));
        out += String.fromCharCode(c);
      }
      return out;
    }
    return utf8Decoder.decode(bytes.subarray(start, end));
  };

  Decoder.prototype.bin = function (n) {
    this.need(n);
    var data = this.bytes.slice(this.pos, this.pos + n);
    this.pos += n;
    return data;
  };

  Decoder.prototype.ext = function (n) {
    this.need(1 + n);
    var type = this.view.getInt8(this.pos);
    var at = this.pos + 1;
    this.pos += 1 + n;
    if (type === -1) {  // the timestamp extension
      if (n === 4) return new Date(this.view.getUint32(at) * 1000);
      if (n === 8) {
        var hi = this.view.getUint32(at), lo = this.view.getUint32(at + 4);
        var nanos = Math.floor(hi / 4);
        var seconds = (hi & 3) * TWO_32 + lo;
        return new Date(seconds * 1000 + nanos / 1e6);
      }
      if (n === 12) {
        var ns = this.view.getUint32(at);
        var secs = this.view.getInt32(at + 4) * TWO_32 + this.view.getUint32(at + 8);
        return new Date(secs * 1000 + ns / 1e6);
      }
    }
    return { extType: type, data: this.bytes.slice(at, at + n) };
  };

  Decoder.prototype.array = function (n, depth) {
    // Each element takes at least one byte: refuse counts the input cannot hold.
    if (n > this.bytes.length - this.pos) throw MsgpackError("truncated msgpack value", this.pos);
    var out = new Array(n);
    for (var i = 0; i < n; i++) out[i] = this.value(depth);
    return out;
  };

  Decoder.prototype.map = function (n, depth) {
    if (2 * n > this.bytes.length - this.pos) throw MsgpackError("truncated msgpack value", this.pos);
    var out = {};
    for (var i = 0; i < n; i++) {
      var key = this.value(depth);
      if (typeof key !== "string") key = String(key);
      var value = this.value(depth);
      if (key === "__proto__") {
        Object.defineProperty(out, key, { value: value, enumerable: true, writable: true, configurable: true });
      } else {
        out[key] = value;
      }
    }
    return out;
  };

  Decoder.prototype.value = function (depth) {
    var at = this.pos;
    var b = this.u8();
    if (b <= 0x7f) return b;
    if (b >= 0xe0) return b - 0x100;
    if (b >= 0xa0 && b <= 0xbf) return this.str(b & 0x1f);
    if (b >= 0x80 && b <= 0x9f) {
      if (depth >= MAX_DEPTH) throw MsgpackError("msgpack nesting too deep", at);
      return (b & 0xf0) === 0x80 ? this.map(b & 0x0f, depth + 1) : this.array(b & 0x0f, depth + 1);
    }
    var v;
    switch (b) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xc4: return this.bin(this.u8());
      case 0xc5: return this.bin(this.u16());
      case 0xc6: return this.bin(this.u32());
      case 0xc7: return this.ext(this.u8());
      case 0xc8: return this.ext(this.u16());
      case 0xc9: return this.ext(this.u32());
      case 0xca: this.need(4); v = this.view.getFloat32(this.pos); this.pos += 4; return v;
      case 0xcb: this.need(8); v = this.view.getFloat64(this.pos); this.pos += 8; return v;
      case 0xcc: return this.u8();
      case 0xcd: return this.u16();
      case 0xce: return this.u32();
      case 0xcf: return this.u64();
      case 0xd0: this.need(1); return this.view.getInt8(this.pos++);
      case 0xd1: this.need(2); v = this.view.getInt16(this.pos); this.pos += 2; return v;
      case 0xd2: this.need(4); v = this.view.getInt32(this.pos); this.pos += 4; return v;
      case 0xd3: return this.i64();
      case 0xd4: return this.ext(1);
      case 0xd5: return this.ext(2);
      case 0xd6: return this.ext(4);
      case 0xd7: return this.ext(8);
      case 0xd8: return this.ext(16);
      case 0xd9: return this.str(this.u8());
      case 0xda: return this.str(this.u16());
      case 0xdb: return this.str(this.u32());
    }
    if (b === 0xdc || b === 0xdd || b === 0xde || b === 0xdf) {
      if (depth >= MAX_DEPTH) throw MsgpackError("msgpack nesting too deep", at);
      var n = (b === 0xdc || b === 0xde) ? this.u16() : this.u32();
      return b <= 0xdd ? this.array(n, depth + 1) : this.map(n, depth + 1);
    }
    throw MsgpackError("invalid msgpack type byte 0x" + b.toString(16), at);  // 0xc1
  };

  function decode(input) {
    var decoder = new Decoder(asBytes(input));
    var value = decoder.value(0);
    if (decoder.pos !== decoder.bytes.length) throw MsgpackError("trailing bytes after the msgpack value", decoder.pos);
    return value;
  }

  // -- encoding -----------------------------------------------------------------

  function Encoder() {
    this.buf = new Uint8Array(256);
    this.view = new DataView(this.buf.buffer);
    this.pos = 0;
  }

  Encoder.prototype.reserve = function (n) {
    if (this.pos + n <= this.buf.length) return;
    var size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    var grown = new Uint8Array(size);
    grown.set(this.buf.subarray(0, this.pos));
    this.buf = grown;
    this.view = new DataView(grown.buffer);
  };
  Encoder.prototype.u8 = function (v) { this.reserve(1); this.buf[this.pos++] = v; };
  Encoder.prototype.u16 = function (v) { this.reserve(2); this.view.setUint16(this.pos, v); this.pos += 2; };
  Encoder.prototype.u32 = function (v) { this.reserve(4); this.view.setUint32(this.pos, v); this.pos += 4; };
  Encoder.prototype.bytes = function (data) { this.reserve(data.length); this.buf.set(data, this.pos); this.pos += data.length; };

  Encoder.prototype.int = function (v) {
    if (v >= 0) {
      if (v <= 0x7f) return this.u8(v);
      if (v <= 0xff) { this.u8(0xcc); return this.u8(v); }
      if (v <= 0xffff) { this.u8(0xcd); return this.u16(v); }
      if (v <= 0xffffffff) { this.u8(0xce); return this.u32(v); }
      this.u8(0xcf);
      this.u32(Math.floor(v / TWO_32));
      return this.u32(v % TWO_32);
    }
    if (v >= -32) return this.u8(v & 0xff);
    if (v >= -128) { this.u8(0xd0); this.reserve(1); this.view.setInt8(this.pos, v); this.pos += 1; return; }
    if (v >= -32768) { this.u8(0xd1); this.reserve(2); this.view.setInt16(this.pos, v); this.pos += 2; return; }
    if (v >= -2147483648) { this.u8(0xd2); this.reserve(4); this.view.setInt32(this.pos, v); this.pos += 4; return; }
    this.u8(0xd3);
    this.reserve(8);
    this.view.setBigInt64(this.pos, BigInt(v));
    this.pos += 8;
  };

  Encoder.prototype.bigint = function (v) {
    this.reserve(9);
    if (v >= 0n) {
      if (v > 0xffffffffffffffffn) throw new RangeError("msgpack cannot encode " + v + ": over uint64");
      if (v <= BigInt(Number.MAX_SAFE_INTEGER)) return this.int(Number(v));
      this.u8(0xcf);
      this.view.setBigUint64(this.pos, v);
    } else {
      if (v < -0x8000000000000000n) throw new RangeError("msgpack cannot encode " + v + ": under int64");
      if (v >= BigInt(Number.MIN_SAFE_INTEGER)) return this.int(Number(v));
      this.u8(0xd3);
      this.view.setBigInt64(this.pos, v);
    }
    this.pos += 8;
  };

  Encoder.prototype.str = function (s) {
    var data = utf8Encoder.encode(s);
    var n = data.length;
    if (n <= 31) this.u8(0xa0 | n);
    else if (n <= 0xff) { this.u8(0xd9); this.u8(n); }
    else if (n <= 0xffff) { this.u8(0xda); this.u16(n); }
    else { this.u8(0xdb); this.u32(n); }
    this.bytes(data);
  };

  Encoder.prototype.bin = function (data) {
    var n = data.length;
    if (n <= 0xff) { this.u8(0xc4); this.u8(n); }
    else if (n <= 0xffff) { this.u8(0xc5); this.u16(n); }
    else { this.u8(0xc6); this.u32(n); }
    this.bytes(data);
  };

  Encoder.prototype.header = function (n, fix, b16, b32) {
    if (n <= 15) this.u8(fix | n);
    else if (n <= 0xffff) { this.u8(b16); this.u16(n); }
    else { this.u8(b32); this.u32(n); }
  };

  Encoder.prototype.value = function (v, depth) {
    if (depth > MAX_DEPTH) throw new RangeError("msgpack nesting too deep (a cycle?)");
    if (v === null || v === undefined) return this.u8(0xc0);
    switch (typeof v) {
      case "boolean": return this.u8(v ? 0xc3 : 0xc2);
      case "number":
        if (Number.isInteger(v) && !Object.is(v, -0)) {
          if (Math.abs(v) <= Number.MAX_SAFE_INTEGER) return this.int(v);
          // A 64-bit int decoded to the nearest double stays an int on the way back.
          if (v >= -9223372036854775808 && v < 18446744073709551616) return this.bigint(BigInt(v));
        }
        this.u8(0xcb);
        this.reserve(8);
        this.view.setFloat64(this.pos, v);
        this.pos += 8;
        return;
      case "bigint": return this.bigint(v);
      case "string": return this.str(v);
    }
    var i;
    if (Array.isArray(v)) {
      this.header(v.length, 0x90, 0xdc, 0xdd);
      for (i = 0; i < v.length; i++) this.value(v[i], depth + 1);
      return;
    }
    if (v instanceof Uint8Array) return this.bin(v);
    if (v instanceof ArrayBuffer) return this.bin(new Uint8Array(v));
    if (ArrayBuffer.isView(v)) return this.bin(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
    var self = this;
    if (v instanceof Map) {
      this.header(v.size, 0x80, 0xde, 0xdf);
      v.forEach(function (value, key) { self.value(key, depth + 1); self.value(value, depth + 1); });
      return;
    }
    if (typeof v === "object") {
      var keys = Object.keys(v).filter(function (k) { return v[k] !== undefined; });
      this.header(keys.length, 0x80, 0xde, 0xdf);
      for (i = 0; i < keys.length; i++) {
        this.str(keys[i]);
        this.value(v[keys[i]], depth + 1);
      }
      return;
    }
    throw new TypeError("msgpack cannot encode a " + typeof v);
  };

  function encode(value) {
    var encoder = new Encoder();
    encoder.value(value, 0);
    return encoder.buf.slice(0, encoder.pos);
  }

  var api = { encode: encode, decode: decode, MAX_DEPTH: MAX_DEPTH };
  if (typeof module === "object" && module.exports) module.exports = api;
  else root.FastflowMsgpack = api;
})(typeof self !== "undefined" ? self : this);
