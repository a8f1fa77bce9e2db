"""Run model-generated Python against assert tests, away from the host (DESIGN §6).

Each call starts a fresh interpreter (`python -I -S -B`) in a new temporary directory, in its own
session, with a stripped environment, resource limits (address space, CPU seconds, file size,
processes), a network namespace of its own where the kernel allows one, privileges dropped to
`nobody` when the caller is root, and a wall-clock timeout that kills the whole process group.

Inside the child a small harness locks the interpreter down before the candidate runs: socket
constructors and name lookups raise, and an audit hook refuses sockets, subprocesses, signals to
other processes, ctypes and file writes outside the temporary directory. It execs the code once
(as module "candidate", so `if __name__ == "__main__"` demos stay quiet), then runs each test
separately with its own time slice, in a fresh copy of the candidate's namespace, with the
builtins restored.

Verdicts are hard to forge from inside. Tests of the form `assert EXPR == LITERAL` are judged in
the parent: the child receives only EXPR and sends back the repr of its value, and only when that
value is plain built-in data (exact types), so neither a rigged `__eq__` nor a tampered harness
can pass without computing the answer. Other tests pass when they run without raising; their
verdicts travel in a result file that counts only with a random nonce (this stops blind forgery,
not code that walks the interpreter's frames to find it). Printed "all tests passed" lines,
written files and early exits count for nothing. Task generators should write `==` tests.

Limits, stated plainly: the audit hook and the in-process blocks are defence in depth, not a
security boundary; code that escapes the interpreter (a C-level exploit) is held only by the OS
measures above. Run untrusted models' code on a machine you can afford to lose, or in a container.
"""

from __future__ import annotations

import ast
import ctypes
import ctypes.util
import functools
import json
import math
import os
import resource
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

NOBODY = 65534
MAX_FILE_BYTES = 16 * 1024 * 1024  # RLIMIT_FSIZE: candidate prints and files stay small
MAX_PROCESSES = 64  # RLIMIT_NPROC: a fork bomb stops here even if the audit hook is bypassed
STDERR_TAIL = 600
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000


class SandboxResult(BaseModel):
    """Per-test verdicts of one run. `error` explains anything beyond a failed assert."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    passed: int = Field(ge=0)
    total: int = Field(ge=0)
    timed_out: bool
    error: str | None
    per_test: list[bool]

    @property
    def fraction(self) -> float:
        # No tests means nothing was verified: 0, not a free 1.0.
        return self.passed / self.total if self.total else 0.0


# The harness runs in the child. It keeps every name it needs after the candidate starts in
# locals and closures, because the candidate can patch any module (json, os, builtins) it imports.
HARNESS = r'''
import sys


def _main():
    import _socket
    import builtins
    import json
    import os
    import signal
    import socket

    job_path = sys.argv[1]
    with open(job_path, encoding="utf-8") as f:
        job = json.load(f)
    os.remove(job_path)
    del sys.argv[1:]
    code, tests, workdir, slice_s = job["code"], job["tests"], job["workdir"], job["per_test_s"]
    head = job["nonce"] + "\n"
    fd = os.open(job["result_path"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    del job

    write, lseek, ftruncate, getcwd = os.write, os.lseek, os.ftruncate, os.getcwd
    setitimer, ITIMER_REAL = signal.setitimer, signal.ITIMER_REAL
    _compile, _exec, _eval, _dict, _type, _str = compile, exec, eval, dict, type, str
    _repr, _isinstance, _int, _bytes, _len = repr, isinstance, int, bytes, len
    _denied_error = PermissionError
    marks = ["-"] * _len(tests)  # '-' not run, '1' ran cleanly, '0' raised, 't' ran out of time
    values = [""] * _len(tests)  # repr of each value test's result, judged by the parent
    notes = []

    def record():
        lines = [head + "".join(marks)]
        for k in range(_len(values)):
            if values[k]:
                lines.append("v" + _str(k) + "\t" + values[k])
        for note in notes:
            lines.append("n\t" + note)
        data = "\n".join(lines).encode("utf-8", "replace")
        lseek(fd, 0, 0)
        ftruncate(fd, 0)
        write(fd, data)

    def describe(exc):
        try:
            text = _type(exc).__name__ + ": " + _str(exc)
        except BaseException:
            text = "exception"
        return text.replace("\n", " ")[:300]

    class SliceTimeout(BaseException):
        pass

    def on_alarm(signum, frame):
        raise SliceTimeout()

    signal.signal(signal.SIGALRM, on_alarm)
    record()

    try:
        compiled = _compile(code, "<candidate>", "exec")
    except BaseException as e:  # SyntaxError, ValueError (NUL bytes), RecursionError, MemoryError
        marks[:] = ["0"] * _len(tests)
        notes.append("code does not compile: " + describe(e))
        record()
        return

    # --- lock down: network first (required), then the audit hook (defence in depth) ---
    def no_network(*args, **kwargs):
        raise OSError("network access is disabled in the sandbox")

    class BlockedSocket:
        def __init__(self, *args, **kwargs):
            no_network()

    for mod in (socket, _socket):
        for name in ("socket", "SocketType"):
            if hasattr(mod, name):
                setattr(mod, name, BlockedSocket)
        for name in ("create_connection", "create_server", "socketpair", "fromfd", "getaddrinfo",
                     "gethostbyname", "gethostbyname_ex", "gethostbyaddr", "getnameinfo"):
            if hasattr(mod, name):
                setattr(mod, name, no_network)

    prefix = workdir.rstrip("/") + "/"
    write_bits = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    path_events = frozenset(("os.remove", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.utime"))
    denied = frozenset((
        "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
        "os.kill", "os.killpg", "signal.pthread_kill", "subprocess.Popen", "pty.spawn",
        "os.link", "os.symlink", "os.startfile", "webbrowser.open",
        "ctypes.dlopen", "ctypes.dlsym", "ctypes.cdata", "ctypes.call_function", "code.__new__",
    ))

    def normal(path):
        if _type(path) is _bytes:
            path = path.decode("utf-8", "surrogateescape")
        if _type(path) is not _str:
            return None  # path-like objects could answer differently when opened: refuse
        if not path.startswith("/"):
            path = getcwd() + "/" + path
        parts = []
        for part in path.split("/"):
            if part == "" or part == ".":
                continue
            if part == "..":
                if parts:
                    parts.pop()
            else:
                parts.append(part)
        return "/" + "/".join(parts)

    def given(dir_fd):
        return dir_fd is not None and dir_fd != -1  # events report an absent dir_fd as -1

    def inside(path, absolute_only=False):
        if _type(path) is _int:
            return True  # an fd the candidate already opened under this hook
        if absolute_only and not (_isinstance(path, (_str, _bytes)) and path[:1] in ("/", b"/")):
            return False  # a relative os.open may carry a dir_fd the event does not show
        p = normal(path)
        return p is not None and (p + "/").startswith(prefix)

    # The hook runs while the candidate may have patched builtins: it uses closures only.
    def hook(event, args):
        if event in denied or event.startswith("socket."):
            raise _denied_error(event + " is not allowed in the sandbox")
        if event == "open":
            path, mode, flags = args
            if mode is None:  # os.open
                if flags & write_bits and not inside(path, absolute_only=True):
                    raise _denied_error("file writes must stay in the sandbox directory")
            elif ("w" in mode or "a" in mode or "x" in mode or "+" in mode) and not inside(path):
                raise _denied_error("file writes must stay in the sandbox directory")
        elif event in path_events:
            if given(args[-1]) or not inside(args[0]):  # args[-1] is dir_fd
                raise _denied_error(event + " outside the sandbox directory")
        elif event == "os.rename":
            src, dst, src_dir_fd, dst_dir_fd = args
            if given(src_dir_fd) or given(dst_dir_fd) or not (inside(src) and inside(dst)):
                raise _denied_error("os.rename outside the sandbox directory")
        elif event == "os.truncate" or event == "shutil.rmtree":
            if not inside(args[0]):
                raise _denied_error(event + " outside the sandbox directory")

    sys.addaudithook(hook)

    # A value leaves the child only as the repr of plain built-in data (exact types, no
    # subclasses), so an object with a rigged __eq__ or __repr__ has nothing to offer.
    scalars = (int, float, complex, str, bytes, bool, type(None))
    containers = (list, tuple, set, frozenset)

    def plain(x, depth):
        if depth > 50:
            return False
        t = _type(x)
        for s in scalars:
            if t is s:
                return True
        for c in containers:
            if t is c:
                for item in x:
                    if not plain(item, depth + 1):
                        return False
                return True
        if t is _dict:
            for k, v in x.items():
                if not (plain(k, depth + 1) and plain(v, depth + 1)):
                    return False
            return True
        return False

    builtins_dict = builtins.__dict__
    pristine = _dict(builtins_dict)
    restore_clear, restore_update = builtins_dict.clear, builtins_dict.update
    # Not "__main__": demo blocks guarded by `if __name__ == "__main__"` must not run.
    namespace = {"__name__": "candidate", "__builtins__": builtins}

    setitimer(ITIMER_REAL, slice_s)
    try:
        try:
            _exec(compiled, namespace)
        finally:
            setitimer(ITIMER_REAL, 0)
    except SliceTimeout:
        notes.append("code timed out at import")
    except BaseException as e:  # tests still run: the functions may be defined before the error
        notes.append("code raised " + describe(e))
    restore_clear()
    restore_update(pristine)
    record()

    # A while loop over locals: a patched `enumerate` or `range` must not choose the tests.
    i, n = 0, _len(tests)
    while i < n:
        kind, source = tests[i]
        i += 1
        ok, value = False, ""
        try:
            restore_clear()
            restore_update(pristine)
            scope = _dict(namespace)
            scope["__builtins__"] = builtins
            setitimer(ITIMER_REAL, slice_s)
            try:
                if kind == "value":
                    result = _eval(_compile(source, "<test>", "eval"), scope)
                else:
                    _exec(_compile(source, "<test>", "exec"), scope)
                    result = None
            finally:
                setitimer(ITIMER_REAL, 0)
            if kind == "value":
                if plain(result, 0):
                    value = _repr(result)
                    if _len(value) > 100000:
                        value = ""
                        notes.append("test " + _str(i - 1) + ": result too large to compare")
                else:
                    notes.append("test " + _str(i - 1) + ": result is not a plain built-in value")
            ok = True
        except SliceTimeout:
            marks[i - 1] = "t"
            notes.append("test " + _str(i - 1) + " timed out")
            record()
            continue
        except AssertionError:
            pass
        except BaseException as e:
            if _len(notes) < 8:
                notes.append("test " + _str(i - 1) + ": " + describe(e))
        marks[i - 1] = "1" if ok else "0"
        values[i - 1] = value
        record()


_main()
'''


@functools.cache
def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None  # namespaces are Linux-only; the in-process network block still applies
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


def _limits(memory_mb: int, cpu_s: int, drop_to_nobody: bool):
    """preexec_fn: runs in the forked child before exec. Order matters (see comments)."""

    def apply() -> None:
        # A private network namespace has no interfaces but loopback (down): no route anywhere.
        # Root can unshare directly; others need a user namespace too. Best effort either way.
        libc = _libc()
        isolated = libc is not None and libc.unshare(CLONE_NEWNET) == 0
        if drop_to_nobody:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
        if libc is not None and not isolated:
            libc.unshare(CLONE_NEWUSER | CLONE_NEWNET)
        memory = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
        resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_FILE_BYTES, MAX_FILE_BYTES))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        # After setuid: set before it, a busy `nobody` would make the exec itself fail.
        resource.setrlimit(resource.RLIMIT_NPROC, (MAX_PROCESSES, MAX_PROCESSES))

    return apply


def _command() -> list[str]:
    # -I: ignore PYTHON* variables and user site; -S: no site-packages; -B: write no bytecode.
    return [sys.executable, "-I", "-S", "-B"]


def _environment(workdir: str) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8"}


@functools.cache
def _can_drop_to_nobody() -> bool:
    """Root drops to `nobody` only if `nobody` can still start this interpreter."""
    if os.name != "posix" or os.geteuid() != 0:
        return False
    try:
        done = subprocess.run(
            [*_command(), "-c", "pass"], preexec_fn=_limits(256, 5, True), env=_environment("/"),
            cwd="/", stdin=subprocess.DEVNULL, capture_output=True, timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def _wait(proc: subprocess.Popen, timeout_s: float) -> bool:
    """Wait for the child without reaping it, then kill its whole process group, then reap.

    While the leader is an unreaped zombie its group id cannot be reused, so the kill reaches
    only what the candidate started. Returns True when the wall clock ran out.
    """
    if not hasattr(os, "waitid"):  # e.g. macOS: reap first, then kill the group (tiny pid-reuse race)
        try:
            proc.wait(timeout=timeout_s)
            timed_out = False
        except subprocess.TimeoutExpired:
            timed_out = True
    else:
        deadline = time.monotonic() + timeout_s
        pause = 0.001
        timed_out = True
        while time.monotonic() < deadline:
            if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                timed_out = False
                break
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 2, 0.02)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
    return timed_out


def _tail(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - STDERR_TAIL))
            return f.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""


class _Check(BaseModel):
    """How the parent judges one test. `value` tests ship only the expression to the child and
    keep the expected value here, so nothing in the child can learn what would pass."""

    model_config = ConfigDict(frozen=True)
    kind: Literal["value", "statement"]
    source: str
    op: Literal["==", "is"] = "=="
    expected: Any = None


def _literal(node: ast.expr) -> tuple[bool, Any]:
    try:
        return True, ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False, None


def _plan(test: str) -> _Check:
    """`assert EXPR == LITERAL` (either order) and `assert EXPR is None/True/False` become value
    checks; any other statement runs as-is in the child and passes when it does not raise."""
    statement = _Check(kind="statement", source=test)
    try:
        tree = ast.parse(test)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return statement
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.Assert):
        return statement
    cond = tree.body[0].test
    if not (isinstance(cond, ast.Compare) and len(cond.ops) == 1
            and isinstance(cond.ops[0], (ast.Eq, ast.Is))):
        return statement
    left, right = cond.left, cond.comparators[0]
    right_ok, right_value = _literal(right)
    left_ok, left_value = _literal(left)
    if right_ok == left_ok:
        return statement  # both literal (nothing to test) or neither (needs the child's objects)
    expr, expected = (left, right_value) if right_ok else (right, left_value)
    source = ast.get_source_segment(test, expr)
    if source is None:
        return statement
    if isinstance(cond.ops[0], ast.Is):
        if expected is not None and expected is not True and expected is not False:
            return statement
        return _Check(kind="value", source=f"({source})", op="is", expected=expected)
    return _Check(kind="value", source=f"({source})", expected=expected)


def _judge(check: _Check, mark: str, value: str | None) -> bool:
    if mark != "1":
        return False
    if check.kind == "statement":
        return True
    if not value:
        return False
    ok, actual = _literal_text(value)
    if not ok:
        return False
    if check.op == "is":
        return actual is check.expected
    try:
        return bool(actual == check.expected)
    except Exception:  # noqa: BLE001 - plain values compare cleanly; be safe anyway
        return False


def _literal_text(text: str) -> tuple[bool, Any]:
    try:
        return True, ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False, None  # e.g. inf, nan or frozenset: no literal form, so no match


def _read_result(path: Path, nonce: str, total: int) -> tuple[str, dict[int, str], list[str]] | None:
    """The harness's marks, values and notes, or None when the file is not the harness's."""
    try:
        with open(path, "rb") as f:
            text = f.read(4 * 1024 * 1024).decode("utf-8", "replace")
    except OSError:
        return None
    lines = text.split("\n")
    if len(lines) < 2 or lines[0] != nonce or len(lines[1]) != total:
        return None
    values: dict[int, str] = {}
    notes: list[str] = []
    for line in lines[2:]:
        tag, _, rest = line.partition("\t")
        if tag == "n":
            notes.append(rest)
        elif tag[:1] == "v" and tag[1:].isdigit():
            values[int(tag[1:])] = rest
    return lines[1], values, notes


def run_python_tests(
    code: str, tests: list[str], *, timeout_s: float = 5.0, memory_mb: int = 512
) -> SandboxResult:
    """Exec `code` once in a sandboxed child, then run each test separately.

    A test is a Python statement, usually an assert. `assert EXPR == LITERAL` (and `is None`,
    `is True`, `is False`) is judged here, in the parent: the child evaluates EXPR and returns it
    only if it is plain built-in data, so a rigged `__eq__` or a tampered harness cannot pass it.
    Any other statement passes when it runs without raising.

    Never raises on bad code: syntax errors, crashes, hangs and memory hogs come back as failed
    tests with `error` saying what happened. `timeout_s` bounds the whole run's wall clock; the
    first exec of the code and each test get an equal slice of it.
    """
    tests = list(tests)
    total = len(tests)
    if timeout_s <= 0 or memory_mb < 64:
        raise ValueError("timeout_s must be positive and memory_mb at least 64")
    if not tests:
        return SandboxResult(passed=0, total=0, timed_out=False, error="no tests given", per_test=[])
    checks = [_plan(t) for t in tests]
    drop = _can_drop_to_nobody()
    _libc()  # load libc here, not in the forked child
    nonce = secrets.token_hex(16)
    # Slices for the code exec and every test, with one spare slice for interpreter start-up.
    slice_s = max(0.05, timeout_s / (total + 2))
    with tempfile.TemporaryDirectory(prefix="traitdose-sandbox-", ignore_cleanup_errors=True) as tmp:
        root = Path(tmp)
        workdir = root / "work"
        workdir.mkdir()
        job = root / f"job-{secrets.token_hex(8)}.json"
        result = root / f"result-{secrets.token_hex(8)}"
        harness = root / "harness.py"
        harness.write_text(HARNESS, encoding="utf-8")
        job.write_text(json.dumps({
            "code": code, "tests": [[c.kind, c.source] for c in checks], "workdir": str(workdir),
            "nonce": nonce, "result_path": str(result), "per_test_s": slice_s,
        }), encoding="utf-8")
        if drop:
            for p in (root, workdir, job, harness):
                os.chown(p, NOBODY, NOBODY)
        stdout_path, stderr_path = root / "stdout.txt", root / "stderr.txt"
        with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
            proc = subprocess.Popen(
                [*_command(), str(harness), str(job)],
                cwd=workdir, env=_environment(str(workdir)), stdin=subprocess.DEVNULL,
                stdout=out, stderr=err, start_new_session=True, close_fds=True,
                preexec_fn=_limits(memory_mb, math.ceil(timeout_s) + 1, drop),
            )
            timed_out = _wait(proc, timeout_s)
        parsed = _read_result(result, nonce, total)
        stderr_tail = _tail(stderr_path)

    problems: list[str] = []
    if parsed is None:
        marks, values, notes = "-" * total, {}, []
        problems.append("the sandbox produced no result")
    else:
        marks, values, notes = parsed
    per_test = [_judge(c, m, values.get(i)) for i, (c, m) in enumerate(zip(checks, marks))]
    if timed_out:
        problems.append(f"timed out after {timeout_s:g}s; process killed")
    elif proc.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        problems.append(f"killed by the CPU or memory limit (exit status {proc.returncode})")
    elif proc.returncode != 0:
        problems.append(f"sandbox process exited with status {proc.returncode}")
    if "t" in marks:
        timed_out = True
    if parsed is not None and "-" in marks and not timed_out:
        problems.append("the process ended before every test ran")
    problems.extend(notes)
    if stderr_tail and (parsed is None or proc.returncode != 0):
        problems.append("stderr: " + stderr_tail.replace("\n", " | "))
    return SandboxResult(
        passed=sum(per_test), total=total, timed_out=timed_out,
        error="; ".join(problems) if problems else None, per_test=per_test,
    )
