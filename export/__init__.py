"""export: Keras model → the ONNX model file the consumer serves (DESIGN contract 2).

Modules: ``source`` (model and run folder) · ``holdout`` (images for the gate) ·
``normalize`` (in-graph normalisation for float-input models) · ``convert``
(tf2onnx) · ``variants`` (fp16, offline optimisation) · ``parity`` (the gate) ·
``card`` (metadata_props and model.json) · ``pipeline`` (one export, end to end) ·
``bench`` (size and throughput of the variants) · ``__main__`` (the CLI).

Nothing here is imported by the consumer; TensorFlow loads only when a model does.
"""

__version__ = "0.1.0"
