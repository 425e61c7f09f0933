# code_interpreter's kernel: one long-lived Python process per thread, inside the sandbox.
#
# Protocol (one request at a time, JSON lines):
#   the server writes {"nonce", "code", "timeout", "cpu"} to fd 0;
#   the code runs in one namespace kept for the kernel's life, its stdout and stderr both going to
#   fd 1 (what the server reads as the call's logs), followed by the nonce once the call is done;
#   the reply goes to fd 3: {"nonce", "error": null | {"name", "value"}, "images": [base64 PNG, ...]}.
# The standard library only: nothing to install beside the interpreter, and no network transport
# (a Jupyter kernel would need ZeroMQ sockets, and a ZeroMQ client in the server).
import ast
import base64
import io
import json
import os
import resource
import signal
import sys
import time
import traceback
import warnings

REQUESTS = os.fdopen(os.dup(0), "r", encoding="utf-8")
REPLIES = os.fdopen(os.dup(3), "w", encoding="utf-8")
os.close(3)
# The code gets an empty stdin (input() ends at once) and one stream for stdout and stderr, in order.
_null = os.open(os.devnull, os.O_RDONLY)
os.dup2(_null, 0)
os.close(_null)
os.dup2(1, 2)
sys.stdin = open(os.devnull, "r")
sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", buffering=0), encoding="utf-8", errors="replace", write_through=True)
sys.stderr = sys.stdout

# Limits for the kernel's life (the server's settings, in the environment it starts the kernel
# with). Hard limits: nothing the code does can raise them again.
def _limit(name, value):
    if value and value > 0:
        resource.setrlimit(name, (value, value))

_limit(resource.RLIMIT_AS, int(os.environ.get("KERNEL_MEMORY_BYTES", "0")))
_limit(resource.RLIMIT_NPROC, int(os.environ.get("KERNEL_MAX_PROCESSES", "0")))
_limit(resource.RLIMIT_FSIZE, int(os.environ.get("KERNEL_MAX_FILE_BYTES", "0")))
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
for _name in ("KERNEL_MEMORY_BYTES", "KERNEL_MAX_PROCESSES", "KERNEL_MAX_FILE_BYTES"):
    os.environ.pop(_name, None)

KERNEL_PID = os.getpid()
# In the jail the kernel may end every process the code left behind (the pid namespace is the
# session's alone); a kernel outside a jail must not.
REAP = os.environ.pop("KERNEL_REAP", "") == "1"
warnings.filterwarnings("ignore", message=".*non-interactive.*")  # plt.show() under Agg
os.chdir(os.environ.pop("KERNEL_DATA_DIR", "/mnt/data"))


class CallTimeout(BaseException):
    """The call ran past its wall-clock time (a BaseException, so a bare `except Exception` in the code does not swallow it)."""


class CpuLimit(BaseException):
    """The call used up its CPU seconds."""


def _on_alarm(signum, frame):
    raise CallTimeout("the code ran longer than the time a call may take")


def _on_cpu(signum, frame):
    raise CpuLimit("the code used more CPU time than a call may")


signal.signal(signal.SIGALRM, _on_alarm)
signal.signal(signal.SIGXCPU, _on_cpu)

# The kernel runs as `python3 -c`: its own frames carry this file name.
KERNEL_FILENAME = "<string>"
namespace = {"__name__": "__main__", "__builtins__": __builtins__}


def _others():
    """Processes of the jail still running, other than the kernel and the jail's init."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in (1, KERNEL_PID):
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as stat:
                if stat.read().rsplit(b")", 1)[1].split()[0] != b"Z":
                    found.append(int(name))
        except OSError:
            pass
    return found


def _reap():
    """Ends every process the code left behind (a fork bomb's survivors fork while being killed)."""
    for _ in range(100):
        try:
            os.kill(-1, signal.SIGKILL)  # every process but this one and the jail's init
        except OSError:
            pass
        if not _others():
            return
        time.sleep(0.01)


def _figures():
    """PNGs of the matplotlib figures the code left open (shown or not), then closed."""
    if "matplotlib.pyplot" not in sys.modules:
        return []
    plt = sys.modules["matplotlib.pyplot"]
    images = []
    try:
        for number in plt.get_fignums():
            buffer = io.BytesIO()
            plt.figure(number).savefig(buffer, format="png")
            images.append(base64.b64encode(buffer.getvalue()).decode("ascii"))
        plt.close("all")
    except Exception as error:  # a figure that cannot be drawn is reported, the rest kept
        print(f"[figure could not be rendered: {error!r}]")
    return images


def _run(code):
    """Runs a cell as a notebook does: the value of a last bare expression is printed."""
    tree = ast.parse(code, filename="<cell>", mode="exec")
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    exec(compile(tree, "<cell>", "exec"), namespace)
    if last is not None:
        value = eval(compile(last, "<cell>", "eval"), namespace)
        if value is not None:
            print(repr(value))


def _cell_traceback(error):
    """The traceback from the code's own frames on (the kernel's are not the user's business)."""
    frames = traceback.extract_tb(error.__traceback__)
    own = [frame for frame in frames if frame.filename != KERNEL_FILENAME]
    lines = ["Traceback (most recent call last):\n"] + traceback.format_list(own) if own else []
    return "".join(lines + traceback.format_exception_only(type(error), error))


for line in REQUESTS:
    request = json.loads(line)
    error = None
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = int(usage.ru_utime + usage.ru_stime)
    soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    cpu = int(request.get("cpu") or 0)
    try:
        if cpu > 0:
            resource.setrlimit(resource.RLIMIT_CPU, (used + cpu, hard))
        if request.get("timeout"):
            signal.setitimer(signal.ITIMER_REAL, float(request["timeout"]))
        _run(request["code"])
    except BaseException as caught:
        signal.setitimer(signal.ITIMER_REAL, 0)
        if isinstance(caught, SystemExit) and caught.code in (None, 0):
            pass
        else:
            error = {"name": type(caught).__name__, "value": str(caught)}
            sys.stdout.write(_cell_traceback(caught))
    finally:
        if os.getpid() != KERNEL_PID:
            os._exit(0)  # a process the code forked finished the cell: it is not the kernel
        signal.setitimer(signal.ITIMER_REAL, 0)
        try:
            resource.setrlimit(resource.RLIMIT_CPU, (resource.RLIM_INFINITY, hard))
        except (ValueError, OSError):
            pass
    if REAP:
        _reap()
    images = _figures()
    try:
        sys.stdout.flush()
    except Exception:
        pass
    os.write(1, request["nonce"].encode("ascii"))
    REPLIES.write(json.dumps({"nonce": request["nonce"], "error": error, "images": images}) + "\n")
    REPLIES.flush()
