import logging

from cnnreg.data import prepare_cache

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO, format="%(asctime)s %(message)s")
height, width, channels = (int(snakemake.wildcards[k]) for k in ("height", "width", "channels"))
summary = prepare_cache(
    snakemake.input[0],
    snakemake.output[0],
    image_size=(height, width),
    channels=channels,
    classes=snakemake.params.classes,
)
logging.info("cached %s: %s", snakemake.input[0], summary)
