"""The execution guard of batch grading: time limits per cell, hang and kernel-death recovery,
and output caps, for the notebook executor that ``otter run`` uses (see :mod:`book.labs.grade`)."""

import asyncio
import contextlib
import json
import time

OUTPUT_LIMIT_CHARS = 200_000
"""Printed output kept per cell while grading; the rest is discarded."""

EVENTS = []
"""What the guard did for the submission being graded in this process (notes for its grade)."""

TRUNCATED = "[further output discarded by the grader]"

# The first cell of every graded notebook: it caps what Python code prints.
OUTPUT_GUARD_CELL = """\
# Inserted by the grader (book.labs): keep at most {limit:,} printed characters.
import sys as _book_sys


class _BookGradingCap:
    def __init__(self, stream, limit):
        self._stream, self._left = stream, limit

    def write(self, text):
        if self._left > 0:
            self._stream.write(text[: self._left])
            if len(text) >= self._left:
                self._stream.write("\\n[further output discarded by the grader]\\n")
        self._left -= len(text)
        return len(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


_book_sys.stdout = _BookGradingCap(_book_sys.stdout, {limit})
_book_sys.stderr = _BookGradingCap(_book_sys.stderr, {limit})
"""


def _first_line(source):
    line = next((text for text in source.splitlines() if text.strip()), "")
    return line if len(line) <= 60 else line[:57] + "..."


def install_execution_guards(cell_time_limit_s, output_limit_chars=OUTPUT_LIMIT_CHARS):
    """Make otter's notebook executor time-limit cells, survive hangs and kernel deaths, cap output.

    ``otter run`` builds ``nbconvert``'s ``ExecutePreprocessor`` with no time
    limit; this replaces that class (in this process only) before otter
    imports it. Checks inserted by otter are bounded by book.grading's own
    limits and get twenty times the cell limit.
    """
    from queue import Empty

    from nbclient.exceptions import DeadKernelError
    from nbclient.util import ensure_async, run_sync
    from nbconvert import preprocessors
    from nbformat.v4 import new_output
    from traitlets import Bool, Integer

    base = preprocessors.ExecutePreprocessor
    if getattr(base, "book_guarded", False):
        return

    class GuardedExecutePreprocessor(base):
        book_guarded = True
        timeout = Integer(int(cell_time_limit_s), allow_none=True).tag(config=True)
        interrupt_on_timeout = Bool(True).tag(config=True)

        def reset_execution_trackers(self):
            super().reset_execution_trackers()
            self._replay, self._timeouts, self._printed, self._truncated = [], 0, 0, False

        def _get_timeout(self, cell):
            if cell is not None and ("Checker" in cell.source or ".check(" in cell.source):
                return 20 * int(cell_time_limit_s)
            return int(cell_time_limit_s)

        async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
            self._timeouts, self._printed, self._truncated = 0, 0, False
            try:
                cell = await super().async_execute_cell(cell, cell_index, execution_count, store_history)
            except DeadKernelError:  # the kernel died, or was stopped after ignoring an interrupt
                if self._timeouts < 2:
                    EVENTS.append(f"the kernel died in the cell starting {_first_line(cell.source)!r}; "
                                   "a new one re-ran the earlier cells")
                await asyncio.sleep(0)  # let nbclient's cancelled output poller finish
                await self._restart_and_replay()
                cell.outputs = [new_output("error", ename="DeadKernelError",
                                           evalue="stopped by the grader", traceback=[])]
                return cell
            if cell.cell_type == "code" and self._timeouts == 0 and cell.source.strip():
                self._replay.append(cell.source)
            return cell

        # nbclient binds the synchronous wrapper to its own coroutine; bind it to ours.
        execute_cell = run_sync(async_execute_cell)

        async def _async_handle_timeout(self, timeout, cell=None):
            self._timeouts += 1
            where = f"the cell starting {_first_line(cell.source)!r}" if cell is not None else "a cell"
            if self._timeouts == 1:
                EVENTS.append(f"{where} ran past the {timeout} s time limit and was interrupted")
                await ensure_async(self.km.interrupt_kernel())
                return None  # wait (up to the limit again) for the interrupted cell to stop
            EVENTS.append(f"{where} did not stop when interrupted (a compiled loop?); its kernel was "
                           "stopped and a new one re-ran the earlier cells")
            with contextlib.suppress(RuntimeError):  # restart=True keeps the manager's zmq context
                await ensure_async(self.km.shutdown_kernel(now=True, restart=True))
            raise DeadKernelError("stopped after the time limit")  # handled in async_execute_cell

        async def _restart_and_replay(self):
            """A new kernel and client (the old client's sockets may be mid-read), then the earlier
            cells again, so the questions after the lost cell are graded as usual."""
            with contextlib.suppress(RuntimeError):
                if await ensure_async(self.km.is_alive()):
                    await ensure_async(self.km.shutdown_kernel(now=True, restart=True))
            await ensure_async(self.kc.stop_channels())
            await self.async_start_new_kernel()
            await self.async_start_new_kernel_client()
            for source in self._replay:
                msg_id = self.kc.execute(source, store_history=False, stop_on_error=False)
                deadline = time.monotonic() + self._get_timeout(None)
                while True:
                    try:
                        reply = await ensure_async(self.kc.shell_channel.get_msg(
                            timeout=max(0.1, deadline - time.monotonic())))
                    except Empty:
                        EVENTS.append("re-running the earlier cells timed out; later questions may score zero")
                        return
                    if reply["parent_header"].get("msg_id") == msg_id:
                        break

        def output(self, outs, msg, display_id, cell_index):
            # The guard cell caps what Python prints; this caps the rest (C-level prints, displays).
            if msg["msg_type"] in ("stream", "display_data", "execute_result", "error"):
                content = json.dumps(msg.get("content", {}))
                self._printed += len(content)
                capped = self._printed > 2 * output_limit_chars
                if (capped or TRUNCATED in content) and not self._truncated:
                    self._truncated = True
                    EVENTS.append(f"a cell printed more than {output_limit_chars:,} characters; the rest "
                                   "was discarded")
                if capped:
                    return None
            return super().output(outs, msg, display_id, cell_index)

    preprocessors.ExecutePreprocessor = GuardedExecutePreprocessor
