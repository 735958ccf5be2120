#!/usr/bin/env python3
"""Python 3 and libipcsh through ctypes (no compiled extension): take a lock,
then receive the messages a Lua script (sender.lua) sends, until "stop".

    lua5.4 sender.lua jobs 5 &  python3 consumer.py jobs

The library is found as IPCSH_LIB, or by its soname libipcsh.so.0."""
import ctypes
import os
import sys

IPCSH_OK, IPCSH_TIMEOUT, IPCSH_ERR = 0, 1, -1


class Error(ctypes.Structure):
    _fields_ = [("code", ctypes.c_int), ("message", ctypes.c_char * 256)]


lib = ctypes.CDLL(os.environ.get("IPCSH_LIB", "libipcsh.so.0"))
P, LL, SZ = ctypes.c_void_p, ctypes.c_longlong, ctypes.c_size_t
ERR = ctypes.POINTER(Error)
for fn, res, args in [
    ("ipcsh_mutex_open", P, [ctypes.c_char_p, P, ERR]),
    ("ipcsh_mutex_lock", ctypes.c_int, [P, LL, ERR]),
    ("ipcsh_mutex_unlock", ctypes.c_int, [P, ERR]),
    ("ipcsh_mutex_close", None, [P]),
    ("ipcsh_queue_open", P, [ctypes.c_char_p, P, ERR]),
    ("ipcsh_queue_receive", ctypes.c_int,
     [P, ctypes.c_char_p, SZ, ctypes.POINTER(SZ), ctypes.POINTER(LL), LL, ERR]),
    ("ipcsh_queue_close", None, [P]),
]:
    f = getattr(lib, fn)
    f.restype, f.argtypes = res, args


def check(ok, err):
    if not ok:
        sys.exit("consumer.py: " + err.message.decode(errors="replace"))


def main():
    name = sys.argv[1] if len(sys.argv) > 1 else "jobs"
    err = Error()
    # One consumer at a time: the lock is released if this process dies.
    m = lib.ipcsh_mutex_open((name + "Consumer").encode(), None, err)
    check(m, err)
    r = lib.ipcsh_mutex_lock(m, 30000, err)
    check(r != IPCSH_ERR, err)
    if r == IPCSH_TIMEOUT:
        sys.exit("consumer.py: another consumer holds the lock")
    q = lib.ipcsh_queue_open(name.encode(), None, err)  # Lua's defaults
    check(q, err)
    buf = ctypes.create_string_buffer(1024)  # the default max_size
    n, prio = SZ(), LL()
    count = 0
    while True:
        r = lib.ipcsh_queue_receive(q, buf, len(buf), n, prio, 10000, err)
        check(r != IPCSH_ERR, err)
        if r == IPCSH_TIMEOUT:
            sys.exit("consumer.py: no message for 10 s")
        msg = buf.raw[: n.value].decode()
        if msg == "stop":
            break
        count += 1
        print(f"{msg} (priority {prio.value})", flush=True)
    print(f"consumer.py: {count} messages", flush=True)
    lib.ipcsh_queue_close(q)
    check(lib.ipcsh_mutex_unlock(m, err) == IPCSH_OK, err)
    lib.ipcsh_mutex_close(m)


main()
