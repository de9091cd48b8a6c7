"""TensorRT: device profiles → builder settings, driving the builder, the device bundle."""
