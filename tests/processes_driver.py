"""One process of a job of two local CPU processes (gloo), for test_processes.py.

It runs `tlsjax es`, then `tlsjax mc`, then `tlsjax es` started with a seed that differs
between the processes (to be refused), all as commands of one job that the first of them
joins; it prints one JSON line with the three exit statuses. With PROCESS_ID `single`
it runs, alone, `tlsjax es` resuming from FOLDER/ck.npz and `tlsjax mc` (the references).

Usage: python processes_driver.py PORT PROCESS_ID FOLDER ES_ARGS MC_ARGS
(ES_ARGS and MC_ARGS: the options of each command as one string.)
"""

from __future__ import annotations

import json
import os
import sys

from tlsjax.cli import main


def run() -> None:
    port, pid, folder, es_args, mc_args = sys.argv[1:6]
    os.chdir(folder)
    if pid == "single":
        codes = [main(["es", *es_args.split(), "--json", "es.json", "--checkpoint", "ck.npz"]),
                 main(["mc", *mc_args.split(), "--json", "mc.json"])]
        sys.__stdout__.write(json.dumps(dict(codes=codes)) + "\n")
        return
    join = ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", pid,
            "--process-timeout", "60"]
    codes = [main(["es", *es_args.split(), "--json", "es.json", *join]),
             main(["mc", *mc_args.split(), "--json", "mc.json", *join]),
             main(["es", *es_args.split(), "--seed", str(7 + int(pid)), *join])]
    sys.__stdout__.write(json.dumps(dict(codes=codes)) + "\n")
    sys.__stdout__.flush()


if __name__ == "__main__":
    run()
