import logging

from cnnreg.cam_outputs import explain_run
from cnnreg.devices import require_gpu
from cnnreg.train import configure_tensorflow

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO, format="%(asctime)s %(message)s")
require_gpu(snakemake.resources.gpu, snakemake.config["allow_cpu"])
configure_tensorflow(snakemake.threads)
explain_run(
    snakemake.params.model,
    snakemake.input.cache,
    dict(snakemake.output),
    layer=snakemake.params.layer,
    evidence=snakemake.input.evidence[0] if snakemake.input.evidence else None,
    **snakemake.params.settings,
)
