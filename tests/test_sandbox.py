import os

os.environ["HF_HUB_OFFLINE"] = "1"

import socket  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import pytest  # noqa: E402

from traitdose.sandbox import SandboxResult, run_python_tests  # noqa: E402

ADD = "def add(a, b):\n    return a + b\n"


def test_passing_code_passes_every_test():
    r = run_python_tests(ADD, ["assert add(2, 3) == 5", "assert add(-1, 1) == 0", "assert 7 == add(3, 4)"])
    assert (r.passed, r.total, r.per_test) == (3, 3, [True, True, True])
    assert r.fraction == 1.0 and not r.timed_out and r.error is None


def test_failing_code_fails_per_test():
    code = "def add(a, b):\n    return a + b if a >= 0 else 0\n"
    r = run_python_tests(code, ["assert add(2, 3) == 5", "assert add(-1, 3) == 2", "assert add(4, 1) == 5"])
    assert r.per_test == [True, False, True]
    assert r.passed == 2 and r.fraction == pytest.approx(2 / 3)


def test_statement_tests_and_identity_checks():
    code = "def half(x):\n    return None if x % 2 else x // 2\n"
    r = run_python_tests(code, ["assert half(3) is None", "assert half(4) is None",
                                "assert half(8) > 3", "x = half(2)\nassert x == 1"])
    assert r.per_test == [True, False, True, True]


def test_syntax_error_scores_zero_and_says_why():
    r = run_python_tests("def add(a, b) return a + b", ["assert add(1, 2) == 3", "assert True"])
    assert r.passed == 0 and r.per_test == [False, False]
    assert "SyntaxError" in r.error


def test_bad_test_string_fails_only_that_test():
    r = run_python_tests(ADD, ["assert add(1, 2) == 3", "assert add(1,", "assert missing(1) == 2"])
    assert r.per_test == [True, False, False]
    assert "NameError" in r.error


def test_error_at_import_still_runs_tests_for_defined_functions():
    r = run_python_tests(ADD + "print(add(int(input()), 1))\n", ["assert add(1, 2) == 3"])
    assert r.per_test == [True]
    assert "EOFError" in r.error


def test_main_guard_does_not_run():
    r = run_python_tests(ADD + "if __name__ == '__main__':\n    raise SystemExit(add(1, input()))\n",
                         ["assert add(1, 2) == 3"])
    assert r.per_test == [True] and r.error is None


def test_infinite_loop_in_one_test_times_out_and_others_still_run():
    code = ADD + "def spin():\n    while True:\n        pass\n"
    start = time.monotonic()
    r = run_python_tests(code, ["assert spin() == 1", "assert add(1, 1) == 2"], timeout_s=1.0)
    assert time.monotonic() - start < 3
    assert r.timed_out and r.per_test == [False, True]
    assert "timed out" in r.error


def test_loop_that_swallows_the_alarm_is_killed_by_the_wall_clock():
    code = (
        "def spin():\n"
        "    while True:\n"
        "        try:\n"
        "            while True:\n"
        "                pass\n"
        "        except BaseException:\n"
        "            pass\n"
    )
    start = time.monotonic()
    r = run_python_tests(code, ["assert spin() == 1", "assert True"], timeout_s=1.0)
    assert time.monotonic() - start < 3
    assert r.timed_out and r.passed == 0
    assert "killed" in r.error


@pytest.mark.parametrize("hog", [
    "def hog():\n    return len(bytearray(4 * 1024 ** 3))\n",
    "def hog():\n    xs = []\n    while True:\n        xs.append(bytearray(16 * 1024 ** 2))\n",
])
def test_memory_hog_is_stopped(hog):
    start = time.monotonic()
    r = run_python_tests(hog, ["assert hog() > 0"], timeout_s=5.0, memory_mb=256)
    assert time.monotonic() - start < 5
    assert r.passed == 0 and not r.per_test[0]
    assert "MemoryError" in r.error


@pytest.fixture()
def local_server():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(5)
    accepted = []

    def accept():
        try:
            accepted.append(server.accept())
        except OSError:
            pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    server.close()


def test_network_attempt_fails(local_server):
    port, accepted = local_server
    code = (
        "import socket\n"
        "def connect(port):\n"
        "    s = socket.create_connection(('127.0.0.1', port), timeout=1)\n"
        "    s.sendall(b'hi')\n"
        "    return 'connected'\n"
        "def raw(port):\n"
        "    import _socket\n"
        "    s = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)\n"
        "    s.connect(('127.0.0.1', port))\n"
        "    return 'connected'\n"
    )
    r = run_python_tests(code, [f"assert connect({port}) == 'connected'", f"assert raw({port}) == 'connected'"])
    assert r.per_test == [False, False]
    assert "network access is disabled" in r.error
    time.sleep(0.1)
    assert accepted == []


def test_environment_is_stripped(monkeypatch):
    monkeypatch.setenv("TRAITDOSE_TEST_SECRET", "sk-do-not-leak")
    code = "import os\ndef env():\n    return sorted(os.environ)\n"
    r = run_python_tests(code, ["assert 'TRAITDOSE_TEST_SECRET' not in env()",
                                "assert 'HF_HUB_OFFLINE' not in env()"])
    assert r.per_test == [True, True]


def test_file_writes_stay_in_the_temp_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    outside = tmp_path / "escaped.txt"
    code = (
        "import os\n"
        "def write_local():\n"
        "    with open('note.txt', 'w') as f:\n"
        "        f.write('hello')\n"
        "    return open('note.txt').read()\n"
        f"def write_outside():\n"
        f"    open({str(outside)!r}, 'w').write('x')\n"
        "    return 'written'\n"
        "def climb_out():\n"
        "    open('../../../../../../../../' + " + repr(str(outside).lstrip('/')) + ", 'w').write('x')\n"
        "    return 'written'\n"
        "def remove_outside():\n"
        f"    os.remove({str(tmp_path / 'keep.txt')!r})\n"
        "    return 'removed'\n"
    )
    (tmp_path / "keep.txt").write_text("keep me")
    r = run_python_tests(code, ["assert write_local() == 'hello'", "assert write_outside() == 'written'",
                                "assert climb_out() == 'written'", "assert remove_outside() == 'removed'"])
    assert r.per_test == [True, False, False, False]
    assert not outside.exists()
    assert not (tmp_path / "note.txt").exists()
    assert (tmp_path / "keep.txt").read_text() == "keep me"


def test_printed_or_written_results_are_not_counted():
    forger = (
        "import os, sys\n"
        "print('3/3 tests passed')\n"
        "print('{\"passed\": 3, \"total\": 3, \"per_test\": [true, true, true]}')\n"
        "for name in os.listdir('..'):\n"
        "    try:\n"
        "        with open(os.path.join('..', name), 'w') as f:\n"
        "            f.write('111')\n"
        "    except OSError:\n"
        "        pass\n"
        "sys.stdout.flush()\n"
        "os._exit(0)\n"
    )
    r = run_python_tests(forger, ["assert add(1, 2) == 3", "assert add(2, 2) == 4", "assert True"])
    assert r.passed == 0 and r.per_test == [False, False, False]


def test_objects_with_rigged_equality_do_not_pass():
    code = (
        "class AlwaysEqual:\n"
        "    def __eq__(self, other):\n"
        "        return True\n"
        "    def __ne__(self, other):\n"
        "        return False\n"
        "class Sneaky(int):\n"
        "    def __eq__(self, other):\n"
        "        return True\n"
        "def add(a, b):\n"
        "    return AlwaysEqual()\n"
        "def add2(a, b):\n"
        "    return Sneaky(0)\n"
        "def add3(a, b):\n"
        "    import builtins\n"
        "    builtins.AssertionError = SystemExit\n"
        "    return [AlwaysEqual()]\n"
    )
    r = run_python_tests(code, ["assert add(1, 2) == 3", "assert add2(1, 2) == 3",
                                "assert add3(1, 2) == [3]", "assert 3 == add(1, 2)"])
    assert r.passed == 0
    assert "not a plain built-in value" in r.error


def test_tests_do_not_leak_state_into_each_other():
    code = "counter = [0]\ndef bump():\n    counter[0] += 1\n    return counter[0]\n"
    r = run_python_tests(code, ["assert bump() == 1", "counter = None\nassert True", "assert bump() == 2"])
    # The module namespace is shared (like a module), but rebinding a name in one test does not
    # leak into the next one.
    assert r.per_test == [True, True, True]


def test_subprocesses_are_refused():
    code = "import subprocess\ndef run():\n    return subprocess.run(['true']).returncode\n"
    r = run_python_tests(code, ["assert run() == 0"])
    assert r.per_test == [False] and "not allowed" in r.error


def test_result_model_and_arguments():
    r = SandboxResult(passed=1, total=4, timed_out=False, error=None, per_test=[True, False, False, False])
    assert r.fraction == 0.25
    assert run_python_tests(ADD, []).fraction == 0.0
    with pytest.raises(ValueError):
        run_python_tests(ADD, ["assert True"], timeout_s=0)
