"""The few thread primitives the parallel Numba epoch needs: atomics, a pause, a yield, a short sleep.

Numba has no atomics on the CPU, so they are written here as intrinsics: LLVM's own
atomic load, store and compare-exchange on one ``int64`` element of an array, with
acquire/release ordering -- what is needed to hand work between threads that share
arrays.  ``cpu_relax`` is the spin-wait hint (``pause`` on x86, ``yield`` on Arm);
``yield_thread``, ``sleep_us`` and ``clock_gettime`` come from the C library (``sched_yield``,
``usleep``, ``clock_gettime``), registered as named symbols like the BLAS routines, so code
calling them can be cached.

Used by ``numba_kernels`` only; nothing here is part of the library's API.
"""

from __future__ import annotations

import ctypes
import platform
import sys

import llvmlite.binding as llvm_binding
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["load_acquire", "store_release", "compare_exchange", "cpu_relax", "yield_thread", "sleep_us",
           "clock_gettime", "MONOTONIC", "AVAILABLE"]


def _libc_functions() -> tuple[int, int, int] | None:
    """Addresses of a thread-yield, a microsecond-sleep and a clock function, or None where
    not found (POSIX: sched_yield, usleep, clock_gettime)."""
    if sys.platform == "win32":
        return None
    try:
        libc = ctypes.CDLL(None)
        functions = (libc.sched_yield, libc.usleep, libc.clock_gettime)
        return tuple(ctypes.cast(f, ctypes.c_void_p).value for f in functions)  # type: ignore[return-value]
    except (OSError, AttributeError):
        return None


_ADDRESSES = _libc_functions()
#: Whether helper threads can wait politely here (POSIX: sched_yield, usleep and clock_gettime
#: found); without them the epoch runs on the calling thread alone.
AVAILABLE = _ADDRESSES is not None
if _ADDRESSES is None:
    # keep the symbols resolvable for code that is compiled but, without helper threads,
    # never reaches these calls: any C function will do (the C library's abs)
    _stand_in = ctypes.cdll.msvcrt.abs if sys.platform == "win32" else ctypes.CDLL(None).abs
    _ADDRESSES = (ctypes.cast(_stand_in, ctypes.c_void_p).value,) * 3
llvm_binding.add_symbol("fastscratch_yield", _ADDRESSES[0])
llvm_binding.add_symbol("fastscratch_sleep_us", _ADDRESSES[1])
llvm_binding.add_symbol("fastscratch_clock_gettime", _ADDRESSES[2])
yield_thread = types.ExternalFunction("fastscratch_yield", types.int32())
sleep_us = types.ExternalFunction("fastscratch_sleep_us", types.int32(types.uint32))
#: ``clock_gettime(clock, timespec*)``; see :func:`monotonic_ns`
clock_gettime = types.ExternalFunction("fastscratch_clock_gettime", types.int32(types.int32, types.voidptr))
#: the monotonic clock's id on this platform (1 on Linux, 6 on macOS), for jitted callers
MONOTONIC = getattr(__import__("time"), "CLOCK_MONOTONIC", 1)

_MACHINE = platform.machine().lower()
_PAUSE = ("llvm.x86.sse2.pause", []) if _MACHINE in ("x86_64", "amd64", "i686", "x86") else \
    ("llvm.aarch64.hint", [1]) if _MACHINE in ("aarch64", "arm64") else None


def _element_pointer(context, builder, array_type, array, index):
    array_struct = context.make_array(array_type)(context, builder, array)
    return cgutils.get_item_pointer(context, builder, array_type, array_struct, [index], wraparound=False)


def _check_int64_array(array):
    if not (isinstance(array, types.Array) and array.dtype == types.int64 and array.ndim == 1):
        raise TypeError("atomics work on one element of a 1-d int64 array")


@intrinsic
def load_acquire(typingctx, array, index):
    """``array[index]``, read atomically with acquire ordering (later reads see what the
    writer wrote before its release store)."""
    _check_int64_array(array)

    def codegen(context, builder, signature, args):
        pointer = _element_pointer(context, builder, signature.args[0], args[0], args[1])
        return builder.load_atomic(pointer, "acquire", 8)

    return types.int64(array, index), codegen


@intrinsic
def store_release(typingctx, array, index, value):
    """``array[index] = value``, atomically with release ordering (everything written
    before it is visible to a thread that acquires the value)."""
    _check_int64_array(array)

    def codegen(context, builder, signature, args):
        pointer = _element_pointer(context, builder, signature.args[0], args[0], args[1])
        stored = context.cast(builder, args[2], signature.args[2], types.int64)
        builder.store_atomic(stored, pointer, "release", 8)
        return context.get_dummy_value()

    return types.void(array, index, value), codegen


@intrinsic
def compare_exchange(typingctx, array, index, expected, new):
    """Atomically: if ``array[index] == expected``, set it to ``new`` and return True;
    else return False (acquire-release ordering)."""
    _check_int64_array(array)

    def codegen(context, builder, signature, args):
        pointer = _element_pointer(context, builder, signature.args[0], args[0], args[1])
        old = context.cast(builder, args[2], signature.args[2], types.int64)
        replacement = context.cast(builder, args[3], signature.args[3], types.int64)
        outcome = builder.cmpxchg(pointer, old, replacement, "acq_rel", "acquire")
        return builder.extract_value(outcome, 1)

    return types.boolean(array, index, expected, new), codegen


@intrinsic
def cpu_relax(typingctx):
    """The processor's spin-wait hint (x86 ``pause``, Arm ``yield``; nothing elsewhere)."""

    def codegen(context, builder, signature, args):
        if _PAUSE is not None:
            name, operands = _PAUSE
            arg_types = [ir.IntType(32)] * len(operands)
            function = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), arg_types),
                                                      name)
            builder.call(function, [ir.Constant(ir.IntType(32), v) for v in operands])
        return context.get_dummy_value()

    return types.void(), codegen
