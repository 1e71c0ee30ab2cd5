"""The papermill engine notebook runs go through: papermill's nbclient client, with two mends.

A widget cell no longer stalls. nbclient mimics the Output widget in the front end: each output
captured by an Output widget (``interact`` has one) goes back to the kernel as a ``comm_msg``
on the shell channel, sent while the client waits on that channel for the cell's
``execute_reply``. jupyter_client's ``Session.send`` sends through a blocking shadow of the
asyncio shell socket, and that ``zmq_send`` processes the socket's pending commands: when the
reply has just arrived, it consumes the edge-triggered ZMQ_FD wake-up that the asyncio poll
waits for. The client then sat idle until the cell timeout, found the reply and called the
cell ok (notes: shared/notes/widget-cell-stall.md). After each IOPub message the client
re-reads the shell socket's events through pyzmq's asyncio wrapper, which wakes a pending
poll when a message is waiting (``wake_pending_poll``).

A cell that runs past its timeout, or whose kernel dies, fails the run: the cell is marked
failed in the executed notebook, gets an error output that names it, the kernel is stopped
at once and ``CellFailure`` is raised.
"""

from __future__ import annotations

import signal

import zmq
import zmq.asyncio
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat import NotebookNode
from nbformat.v4 import new_output
from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine, papermill_engines
from papermill.log import logger
from papermill.utils import remove_args

ENGINE_NAME = "workbench"


class CellFailure(Exception):
    """A cell that ran past its timeout, or whose kernel died; ``ename: evalue`` names it."""

    def __init__(self, ename: str, evalue: str, cell_index: int) -> None:
        super().__init__(f"{ename}: {evalue}")
        self.ename, self.evalue, self.cell_index = ename, evalue, cell_index


def wake_pending_poll(socket: zmq.asyncio.Socket) -> None:
    """Wake an asyncio poll on ``socket`` whose message is already waiting.

    A send through a blocking shadow of the socket may have consumed the wake-up; pyzmq's
    asyncio ``Socket.get(EVENTS)`` schedules the waiting poll when POLLIN is set.
    """
    socket.get(zmq.EVENTS)


class WorkbenchNotebookClient(PapermillNotebookClient):
    """papermill's client that no widget cell stalls and whose timeouts fail the run."""

    def process_message(self, msg: dict, cell: NotebookNode, cell_index: int):
        try:
            return super().process_message(msg, cell, cell_index)
        finally:  # the Output-widget mimic may just have sent on the shell channel
            wake_pending_poll(self.kc.shell_channel.socket)

    def execute_cell(self, cell: NotebookNode, cell_index: int, *args, **kwargs):
        try:
            return super().execute_cell(cell, cell_index, *args, **kwargs)
        except (CellTimeoutError, DeadKernelError) as err:
            raise self._fail_cell(err, cell, cell_index) from err

    def _fail_cell(self, err: Exception, cell: NotebookNode, cell_index: int) -> CellFailure:
        """Record the failure in the cell (an error output, papermill's failed status) and
        keep the widget state for the partial report; the kernel is stopped at once."""
        lines = cell.source.strip().splitlines() or [""]
        name = f"cell {cell_index + 1} ({lines[0][:60]}{' ...' if len(lines) > 1 else ''})"
        if isinstance(err, DeadKernelError):
            ename, evalue = "DeadKernelError", f"the kernel died while running {name}{self._exit()}"
        elif "IOPub" in str(err):
            ename, evalue = "CellTimeoutError", (
                f"{name}: the kernel replied but its output did not arrive within "
                f"{self.iopub_timeout} s")
        else:
            ename, evalue = "CellTimeoutError", (
                f"{name} ran past the {self._get_timeout(cell)} s cell timeout "
                "(WORKBENCH_CELL_TIMEOUT)")
        cell.outputs.append(new_output("error", ename=ename, evalue=evalue,
                                       traceback=[f"{ename}: {evalue}"]))
        self.nb_man.cell_exception(cell, cell_index=cell_index)
        self.set_widgets_metadata()
        self.shutdown_kernel = "immediate"  # busy or dead: no graceful shutdown to wait for
        return CellFailure(ename, evalue, cell_index)

    def _exit(self) -> str:
        """How the kernel process ended: ' (exit code 1)', ' (killed by SIGKILL ...)'."""
        process = getattr(self.km.provisioner, "process", None) if self.km else None
        code = process.poll() if process is not None else None
        if code is None:
            return ""
        if code >= 0:
            return f" (exit code {code})"
        name = signal.Signals(-code).name
        return f" (killed by {name}{': out of memory?' if name == 'SIGKILL' else ''})"


class WorkbenchEngine(NBClientEngine):
    """papermill's nbclient engine with ``WorkbenchNotebookClient``."""

    @classmethod
    def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False, stdout_file=None,
                                 stderr_file=None, start_timeout=60, execution_timeout=None,
                                 **kwargs):
        kwargs = remove_args(["input_path", "timeout", "startup_timeout"], **kwargs)
        client = WorkbenchNotebookClient(
            nb_man, kernel_name=kernel_name, timeout=execution_timeout,
            startup_timeout=start_timeout, log=logger, log_output=log_output,
            stdout_file=stdout_file, stderr_file=stderr_file, **kwargs)
        return client.execute()


papermill_engines.register(ENGINE_NAME, WorkbenchEngine)
