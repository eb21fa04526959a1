import time

started = time.time()

import logging

from cnnreg.devices import require_gpu
from cnnreg.execution import Execution
from cnnreg.packs import Member, train_pack
from cnnreg.stopping import install_sigterm_handler

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO, format="%(asctime)s %(threadName)s %(message)s")
require_gpu(snakemake.resources.gpu, snakemake.config["allow_cpu"])
install_sigterm_handler()
train_pack(
    snakemake.wildcards.pack,
    [Member(run, **member) for run, member in snakemake.params.members.items()],
    snakemake.output[0],
    threads=snakemake.threads,
    concurrent=snakemake.params.concurrent,
    execution=Execution(**snakemake.params.execution),
    started=started,
)
