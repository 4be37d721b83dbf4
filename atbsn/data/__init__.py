"""Data: image files, SIDD and DND loaders, the official patch layout, the embedded default data
(scikit-image photos + unprocessing camera noise) and random training crops."""

from atbsn.data.embedded import NoisyImage, embedded_dataset
from atbsn.data.images import Image, list_images, read_image, write_image
from atbsn.data.sources import training_images, validation_images

__all__ = ["Image", "NoisyImage", "embedded_dataset", "list_images", "read_image", "training_images",
           "validation_images", "write_image"]
