"""clazzify's trainer: labelled images → HDF5 → Keras model (the model file is the contract).

Entry point: ``python -m trainer --help``. Modules, from the edge inward:

- :mod:`trainer.sources`   find labelled images (folder per label or CSV manifest)
- :mod:`trainer.decode`    parallel, order-preserving, bounded-memory decoding via THE preprocess
- :mod:`trainer.splits`    stratified, seeded train/val/test assignment (pure)
- :mod:`trainer.h5format`  the HDF5 layout: names, writer, digest
- :mod:`trainer.dataset`   ``build-dataset``: sources → decode → dedup → HDF5
- :mod:`trainer.reader`    out-of-core batches (``keras.utils.PyDataset``)
- :mod:`trainer.augment`   training-only augmentation layers
- :mod:`trainer.models`    alexnet, inceptionv3, mobilenetv3small, efficientnetb0
- :mod:`trainer.device`    backend / GPU detection, mixed precision
- :mod:`trainer.callbacks` best-inference-model checkpoint, images/s meter, cosine schedule
- :mod:`trainer.train`     ``train``: the run folder
- :mod:`trainer.metrics`   top-1, per-class precision/recall/F1, confusion matrix (pure NumPy)
- :mod:`trainer.report`    curves.png, confusion_matrix.png
- :mod:`trainer.evaluate`  ``evaluate``: a run on an HDF5 split or a folder
- :mod:`trainer.fashion_mnist`  the public-dataset recipe's converter

Nothing here imports confluent-kafka or onnxruntime; Keras/TensorFlow are imported
lazily, only by the commands that need them (``build-dataset`` never does).
"""
