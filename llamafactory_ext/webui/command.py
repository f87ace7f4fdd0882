"""LLaMA-Factory's own web UI (LlamaBoard) with this project inside it.

    llamafactory-ext webui                                  # http://127.0.0.1:7860
    llamafactory-ext webui port=7861 dataset_dir=/data/my_project
    llamafactory-ext webui host=0.0.0.0                     # reachable from other machines

The page is LlamaBoard, built from LLaMA-Factory's own components (top bar, Train, Evaluate &
Predict, Chat, Export), plus:

- "Data dir" starts at the project's data folder (the folder holding dataset_info.json: the
  working folder, or dataset_dir=), and the data set lists show only entries whose files exist;
- a "Recipe" dropdown (shipped recipes and recipes/*.yaml here) that fills the Train tab, and a
  "Thinking format" (thinking / non-thinking / mixed = enable_thinking true / false / null) that
  reaches the training arguments, null included;
- three tabs: "Thinking eval" (llamafactory-ext eval: ITALIC, GSM8K, Mult-IT, the lm-eval Italian
  suite, in both thinking modes), "Format study" (llamafactory-ext study: dry run, run / resume,
  the Version Series) and "Inspect" (llamafactory-ext inspect on the Train tab's settings).

The added tabs run the commands as subprocesses in the working folder, show the exact command, and
write exactly what the command writes. Stop the server with Ctrl-C (or SIGTERM): running commands
are aborted first (their process groups, SIGINT first: finished work is kept and resumes).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import threading

from llamafactory_ext.config import UserError, describe, from_argv, option

USAGE = "[host=127.0.0.1] [port=7860] [dataset_dir=PATH] [share=false]"


@dataclasses.dataclass
class WebuiOptions:
    host: str = option("127.0.0.1", "address to listen on (0.0.0.0: every interface)")
    port: int = option(7860, "port to listen on", ge=1, le=65535)
    dataset_dir: str | None = option(None, "the project's data folder, holding dataset_info.json (default: where prepare registered)")
    share: bool = option(False, "also open a public gradio.live link (needs internet)")


def options_help() -> str:
    return describe(WebuiOptions)


def check_options(opts: WebuiOptions) -> None:
    """Bad input stops here, in one line, before LLaMA-Factory and gradio are even imported."""
    if opts.dataset_dir is not None and not os.path.isdir(opts.dataset_dir):
        raise UserError(f"dataset_dir {opts.dataset_dir} is not a folder")
    with socket.socket(socket.AF_INET6 if ":" in opts.host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((opts.host, opts.port))
        except OSError as exc:
            raise UserError(f"cannot listen on {opts.host}:{opts.port}: {exc.strerror or exc} "
                            "(another server there? choose port=N)") from None


def serve(opts: WebuiOptions) -> int:
    """Build the page, serve it until Ctrl-C / SIGTERM, then stop every command it started."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from llamafactory_ext.webui.board import create_ui
    from llamafactory_ext.webui.project import find_data_folder, shown_path

    data_dir = shown_path(find_data_folder(opts.dataset_dir))
    page = create_ui(data_dir)
    stop = threading.Event()
    handlers = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        page.demo.queue().launch(server_name=opts.host, server_port=opts.port, share=opts.share, inbrowser=False,
                            prevent_thread_lock=True, quiet=False)
        print(f"webui: Data dir {data_dir}; stop with Ctrl-C", flush=True)
        stop.wait()
    finally:
        print("webui: stopping", flush=True)
        for tab in page.tabs:
            tab.abort_all()
        if page.board.runner.trainer is not None:  # LlamaBoard's own training process (as Ctrl-C in its terminal would)
            page.board.runner.set_abort()
        page.demo.close()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    print("webui: stopped", flush=True)
    return 0


def main(argv: list[str]) -> int:
    opts = from_argv(WebuiOptions, argv)
    check_options(opts)
    return serve(opts)
