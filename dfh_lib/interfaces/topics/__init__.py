"""Chapter-facing namespaces (dfh.gan, dfh.distill, dfh.quantization, dfh.data):
re-exports of the layers, one per book topic."""
