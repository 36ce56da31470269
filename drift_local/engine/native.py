"""The process-wide llama.cpp state: backend start-up and log capture.

llama.cpp writes its progress and errors to stderr. We keep the last error lines instead,
so a failure becomes one clear line for the user (set DRIFT_LOCAL_DEBUG=1 to see everything).
"""

from __future__ import annotations

import collections
import ctypes
import functools
import os
import sys
import threading
from pathlib import Path

import llama_cpp

_ERROR = 3
_CONT = 5
_recent_errors: collections.deque[str] = collections.deque(maxlen=8)
_recent_lines: collections.deque[str] = collections.deque(maxlen=256)
_last_level = 0
_log_count = 0
_started = False
_lock = threading.Lock()


@llama_cpp.llama_log_callback
def _on_log(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    global _last_level, _log_count
    level = _last_level if level == _CONT else level
    _last_level = level
    message = text.decode("utf-8", errors="replace")
    if os.environ.get("DRIFT_LOCAL_DEBUG"):
        sys.stderr.write(message)
    if level == _ERROR and message.strip():
        _recent_errors.append(message.strip())
    if "MiB" in message:  # buffer sizes, for memory accounting
        _recent_lines.append(message)
        _log_count += 1


def start() -> None:
    """Initialise llama.cpp once per process and route its log through us."""
    global _started
    with _lock:
        if _started:
            return
        llama_cpp.llama_log_set(_on_log, ctypes.c_void_p(0))
        llama_cpp.llama_backend_init()
        _started = True


@functools.cache
def built_with_amx() -> bool:
    """Whether llama.cpp's CPU backend was compiled with Intel AMX (a native build on a Xeon
    that has it). Its AMX matrix kernels crash on the embedded Q4_1 model (seen in
    ggml_backend_amx_mul_mat, llama.cpp of llama-cpp-python 0.3.36), so models then load
    without the extra buffer types that route to them."""
    for path in sorted((Path(llama_cpp.__file__).parent / "lib").glob("*ggml-cpu*")):
        try:
            has_amx = ctypes.CDLL(str(path)).ggml_cpu_has_amx_int8
        except (OSError, AttributeError):
            continue
        has_amx.restype = ctypes.c_int
        return bool(has_amx())
    return False


def last_error() -> str:
    """The most recent error llama.cpp logged, or '' (and forget it)."""
    message = _recent_errors[-1] if _recent_errors else ""
    _recent_errors.clear()
    return message


def log_since(mark: int) -> str:
    """The log text written since `log_mark()` returned `mark` (bounded to recent lines)."""
    lines = list(_recent_lines)
    return "".join(lines[max(0, len(lines) - (_log_count - mark)):])


def log_mark() -> int:
    return _log_count

