"""How sentences name things: a value with its interval and n, a variant in words, a verdict.

Shared by the generic answer and the answer kinds (`cnnreg.answers`), so that every sentence
states a number, its interval and its verdict the same way.
"""

from cnnreg.intervals import MIN_INTERVAL, Interval
from cnnreg.readable import bounds, column_title
from cnnreg.tables import STATISTICS

#: What an answer's verdicts add up to (`Verdicts.status`).
SETTLED, NOT_SETTLED, DESCRIPTION = "settled", "not settled", "description"
#: How a Grad-CAM method is named (the methods of `cnnreg.gradcam.METHODS`).
METHOD_TITLES = {"gradcam": "Grad-CAM", "gradcam_pp": "Grad-CAM++"}
#: How a model is named where it is what varies.
MODEL_WORDS = {
    "alexnet": "AlexNet",
    "vgg16": "VGG16",
    "vgg16_imagenet": "ImageNet VGG16 features with a new head",
}


class Verdicts:
    """The verdicts an answer gives: its status is settled only if every one of them is."""

    def __init__(self):
        self.given = []

    def add(self, status):
        self.given.append(status)

    @property
    def status(self):
        if not self.given:
            return DESCRIPTION
        return SETTLED if all(status == SETTLED for status in self.given) else NOT_SETTLED


def row_interval(row, name, suffix=""):
    """The `Interval` of a table row's ``{name}_mean{suffix}``, ``_low``, … columns."""
    mean, low, high, method, n = (row[f"{name}_{statistic}{suffix}"] for statistic in STATISTICS)
    return Interval(mean, low, high, method, int(n))


def said(interval, spec=".3f"):
    """A mean with its interval and n: ``0.858 (0.800–0.910, bootstrap 95 %, n = 3)``, ``0.858
    (range 0.800–0.910, n = 2)`` or ``0.858 (n = 1)``; signed or negative bounds join with "to"."""
    mean, low, high, method, n = interval
    if n == 0:
        return "no value"
    if n == 1:
        return f"{mean:{spec}} (n = 1)"
    between = bounds(low, high, spec)
    if method == "range":
        return f"{mean:{spec}} (range {between}, n = {n})"
    return f"{mean:{spec}} ({between}, {method}, n = {n})"


def stated(row, name, spec=".3f", suffix=""):
    """`said` of a table row's value ``name``."""
    return said(row_interval(row, name, suffix), spec)


def negated(interval):
    """The interval of minus the value: for a difference where lower is better."""
    mean, low, high, method, n = interval
    return Interval(-mean, -high, -low, method, n)


def verdict(difference, verdicts, positive, negative):
    """What a paired difference says: `positive` if settled above 0, `negative` if below.

    A difference is settled only when it has an interval (at least `MIN_INTERVAL` pairs) that
    excludes 0; each call adds its status to `verdicts`.
    """
    mean, low, high, _, n = difference
    if n == 0:
        verdicts.add(NOT_SETTLED)
        return "no pairs to compare"
    if n < MIN_INTERVAL:
        verdicts.add(NOT_SETTLED)
        return "too few pairs for an interval, so no verdict"
    if low <= 0 <= high:
        verdicts.add(NOT_SETTLED)
        return "the interval includes 0, so it is not settled"
    verdicts.add(SETTLED)
    return positive if mean > 0 else negative


def parameter_words(name, value):
    """A parameter's value in words: ``batch_norm`` "True" → "batch normalization", a rate of 0
    → "no dropout", ``augment`` "lab" → "augmentation (lab)"."""
    if name == "batch_norm":
        return "batch normalization" if value in (True, "True") else "no batch normalization"
    if name in ("dropout", "spatial_dropout"):
        words = name.replace("_", " ")
        return f"no {words}" if float(value) == 0 else f"{words} {value}"
    if name == "augment":
        return "no augmentation" if value == "none" else f"augmentation ({value})"
    if name == "model":
        return MODEL_WORDS.get(value, value)
    return f"{column_title(name)} {value}"


def variant_words(row, shown):
    """A variant table row in words: its `shown` (varied) parameters, or its model's name."""
    if not shown:
        return MODEL_WORDS.get(row["variant"], row["variant"])
    return ", ".join(parameter_words(name, row[name]) for name in shown)


def where(key):
    """ "On skin", "On skin after 50 epochs": what a group of a table shares."""
    text = f"On {key['dataset']}"
    return text + (f" after {int(key['at_epoch'])} epochs" if "at_epoch" in key else "")
