"""Image files for the tests of cnnreg.data and cnnreg.images."""

import imageio.v3 as iio
import numpy as np

#: An RGB colour (no two channels equal) for solid-colour test images.
RGB = (30, 200, 90)


def write_image(path, image):
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, image)
    return path


def gray(value, shape=(20, 24)):
    return np.full(shape, value, dtype=np.uint8)


def corrupt(path, data=b"this is not an image"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
