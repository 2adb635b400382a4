"""Gzip with seek points: inflate a stream and resume it later near any offset, not from byte 0.

A deflate stream cannot be entered in the middle: each block may refer to the 32 KB of output
before it and starts at an arbitrary *bit*. What makes re-entry possible (zlib's zran technique)
is, at a block boundary, the input position, the bit offset inside that byte, and the last 32 KB
of output: a raw inflater primed with those bits and given that window as its dictionary goes on
exactly as the original would have. Python's ``zlib`` module exposes neither block boundaries
(``Z_BLOCK``) nor ``inflatePrime``, so this module calls the same libz through ctypes; where libz
cannot be loaded, :func:`available` is False and callers inflate from the start as before.

While reading, a seek point is taken every ``spacing`` bytes of output; a resume costs at most one
spacing of inflating. Points hold the window compressed, a few KB each.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any

from .ports import SeekPoint, UnreadableInput

WINDOW = 32768
OUT_CHUNK = 1 << 20
DEFAULT_SPACING = 8 << 20

_Z_OK, _Z_STREAM_END, _Z_NEED_DICT, _Z_BUF_ERROR = 0, 1, 2, -5
_Z_NO_FLUSH, _Z_BLOCK = 0, 5


class _ZStream(ctypes.Structure):
    _fields_ = [
        ("next_in", ctypes.c_void_p),
        ("avail_in", ctypes.c_uint),
        ("total_in", ctypes.c_ulong),
        ("next_out", ctypes.c_void_p),
        ("avail_out", ctypes.c_uint),
        ("total_out", ctypes.c_ulong),
        ("msg", ctypes.c_char_p),
        ("state", ctypes.c_void_p),
        ("zalloc", ctypes.c_void_p),
        ("zfree", ctypes.c_void_p),
        ("opaque", ctypes.c_void_p),
        ("data_type", ctypes.c_int),
        ("adler", ctypes.c_ulong),
        ("reserved", ctypes.c_ulong),
    ]


@cache
def _libz() -> Any:
    try:
        lib = ctypes.CDLL("libz.so.1")
    except OSError:
        return None
    lib.zlibVersion.restype = ctypes.c_char_p
    lib.inflateInit2_.argtypes = [ctypes.POINTER(_ZStream), ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.inflate.argtypes = [ctypes.POINTER(_ZStream), ctypes.c_int]
    lib.inflateEnd.argtypes = [ctypes.POINTER(_ZStream)]
    lib.inflateReset2.argtypes = [ctypes.POINTER(_ZStream), ctypes.c_int]
    lib.inflatePrime.argtypes = [ctypes.POINTER(_ZStream), ctypes.c_int, ctypes.c_int]
    lib.inflateSetDictionary.argtypes = [ctypes.POINTER(_ZStream), ctypes.c_char_p, ctypes.c_uint]
    return lib


def available() -> bool:
    return _libz() is not None


class _Inflater:
    def __init__(self, lib: Any, window_bits: int) -> None:
        self._lib = lib
        self.stream = _ZStream()
        self._ref = ctypes.byref(self.stream)
        version = lib.zlibVersion()
        if lib.inflateInit2_(self._ref, window_bits, version, ctypes.sizeof(_ZStream)) != _Z_OK:
            raise MemoryError("inflateInit2 failed")

    def reset(self, window_bits: int) -> None:
        self._lib.inflateReset2(self._ref, window_bits)

    def prime(self, bits: int, value: int) -> None:
        if self._lib.inflatePrime(self._ref, bits, value) != _Z_OK:
            raise UnreadableInput(0, "cannot restart the gzip stream at its seek point")

    def set_dictionary(self, window: bytes) -> None:
        if window and self._lib.inflateSetDictionary(self._ref, window, len(window)) != _Z_OK:
            raise UnreadableInput(0, "cannot restart the gzip stream at its seek point")

    def inflate(self, flush: int) -> int:
        return int(self._lib.inflate(self._ref, flush))

    def close(self) -> None:
        self._lib.inflateEnd(self._ref)


def inflate(
    chunks: Iterator[bytes],
    *,
    start: SeekPoint | None = None,
    on_point: Callable[[SeekPoint], None] | None = None,
    spacing: int = DEFAULT_SPACING,
) -> Iterator[bytes]:
    """Decompressed bytes of a (multi-member) gzip stream.

    ``chunks`` is the compressed stream from byte 0, or from ``start.read_from`` when resuming
    at ``start``; output then begins at ``start.out_offset``.
    Zero padding after the last member is ignored, as gzip(1) does; a truncated or corrupt stream
    raises :class:`UnreadableInput`. ``on_point`` receives a seek point about every ``spacing``
    bytes of output.
    """
    lib = _libz()
    if lib is None:
        raise RuntimeError("libz is not available")
    out_buf = ctypes.create_string_buffer(OUT_CHUNK)
    out_addr = ctypes.addressof(out_buf)
    history = b""  # the last WINDOW bytes of output before out_buf's content
    produced = 0 if start is None else start.out_offset  # output before out_buf's content
    consumed = 0 if start is None else start.read_from  # input bytes before `data`
    last_point = produced
    raw = start is not None  # a resumed stream is raw deflate until its member ends
    inf = _Inflater(lib, -15 if raw else 31)
    member_started = raw
    trailer_left = 0  # bytes of a member's trailer still to skip (raw mode)
    padding = False
    first = start is not None and start.bits > 0
    if start is not None:
        history = start.window
    want_points = on_point is not None

    def take() -> bytes:
        """Hand over what sits inflated in the output buffer, so nothing good is held back by an error."""
        nonlocal produced, history
        s = inf.stream
        filled = OUT_CHUNK - s.avail_out if s.next_out else 0
        if not filled:
            return b""
        chunk = ctypes.string_at(out_addr, filled)
        history = chunk[-WINDOW:] if filled >= WINDOW else (history + chunk)[-WINDOW:]
        produced += filled
        s.next_out = out_addr
        s.avail_out = OUT_CHUNK
        return chunk

    try:
        if start is not None and not start.bits:
            inf.set_dictionary(start.window)
        for data in chunks:
            if first and data:
                # The byte holding the unread bits of the seek point: prime them, then go on after it.
                inf.prime(start.bits, data[0] >> (8 - start.bits))  # type: ignore[union-attr]
                inf.set_dictionary(start.window)  # type: ignore[union-attr]
                data = data[1:]
                consumed += 1
                first = False
            pos = 0
            while pos < len(data):
                if trailer_left:
                    step = min(trailer_left, len(data) - pos)
                    trailer_left -= step
                    pos += step
                    if not trailer_left:
                        inf.reset(31)  # a following member starts with its own gzip header
                        member_started = False
                    continue
                if padding or (not member_started and data[pos] == 0):
                    if data[pos:].strip(b"\x00"):
                        if tail := take():
                            yield tail
                        raise UnreadableInput(produced, "data after the gzip padding is not a gzip member")
                    padding = True
                    break
                member_started = True
                view = data[pos:]
                holder = ctypes.c_char_p(view)
                s = inf.stream
                s.next_in = ctypes.cast(holder, ctypes.c_void_p)
                s.avail_in = len(view)
                while True:
                    if not s.next_out or s.avail_out == 0:
                        if chunk := take():
                            yield chunk
                        s.next_out = out_addr
                        s.avail_out = OUT_CHUNK
                    ret = inf.inflate(_Z_BLOCK if want_points else _Z_NO_FLUSH)
                    if ret == _Z_NEED_DICT or (ret < 0 and ret != _Z_BUF_ERROR):
                        message = s.msg.decode(errors="replace") if s.msg else f"zlib error {ret}"
                        if tail := take():  # what inflated before the damage is good data: hand it on first
                            yield tail
                        raise UnreadableInput(produced, f"corrupt gzip data ({message})")
                    now_out = produced + OUT_CHUNK - s.avail_out
                    if ret == _Z_STREAM_END:
                        break
                    if want_points and s.data_type & 128 and not s.data_type & 64 and now_out - last_point >= spacing:
                        filled = OUT_CHUNK - s.avail_out
                        window = (history + ctypes.string_at(out_addr, filled))[-WINDOW:]
                        in_offset = consumed + pos + len(view) - s.avail_in
                        on_point(SeekPoint(now_out, in_offset, s.data_type & 7, window))  # type: ignore[misc]
                        last_point = now_out
                    if s.avail_in == 0 and s.avail_out > 0:
                        break  # needs more input
                used = len(view) - s.avail_in
                pos += used
                if ret == _Z_STREAM_END:
                    if raw:
                        trailer_left = 8
                        raw = False
                    else:
                        inf.reset(31)
                        member_started = False
            consumed += len(data)
        if tail := take():
            yield tail
        if member_started or trailer_left:
            raise UnreadableInput(produced, "the gzip stream ends before its last member does (truncated file?)")
    finally:
        inf.close()
