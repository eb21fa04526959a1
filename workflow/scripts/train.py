import time

started = time.time()

import logging

from cnnreg.stopping import install_sigterm_handler
from cnnreg.train import train_run

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO, format="%(asctime)s %(message)s")
install_sigterm_handler()
train_run(
    snakemake.wildcards.run,
    snakemake.params.run,
    snakemake.input.images,
    run_dir=snakemake.params.run_dir,
    threads=snakemake.threads,
    started=started,
    features_path=snakemake.input.get("features"),
    weights_path=snakemake.input.get("weights"),
)
