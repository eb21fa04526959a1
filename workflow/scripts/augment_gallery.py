import logging

from cnnreg.galleries import write_galleries

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO, format="%(asctime)s %(message)s")
write_galleries(snakemake.input[0], snakemake.params.gallery, dict(snakemake.output), snakemake.wildcards.dataset)
