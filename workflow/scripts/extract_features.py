import json
import logging

from cnnreg.atomic import write_text
from cnnreg.devices import require_gpu
from cnnreg.train import configure_tensorflow
from cnnreg.transfer import extract_dataset_features

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO, format="%(asctime)s %(message)s")
require_gpu(snakemake.resources.gpu, snakemake.config["allow_cpu"])
configure_tensorflow(snakemake.threads)
summary = extract_dataset_features(snakemake.input.cache, snakemake.output.features, snakemake.input.weights)
logging.info("extracted %s: %s", snakemake.input.cache, summary)
write_text(snakemake.output.summary, json.dumps(summary, indent=2, default=str))
