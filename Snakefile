from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

from cnnreg.configfiles import ConfigFileError, check_config_files

min_version("9.0")

# Before Snakemake reads them: it keeps the last of two equal keys without a word, and its error
# for broken YAML names no file.
try:
    check_config_files([*workflow.configfiles, "config/config.yaml"])
except ConfigFileError as error:
    raise WorkflowError(f"Invalid config: {error}") from None


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/transfer.smk"
include: "workflow/rules/augment.smk"
include: "workflow/rules/gradcam.smk"
include: "workflow/rules/aggregate.smk"


rule all:
    default_target: True
    input:
        all_targets(),
