"""End-to-end speed of µ-MoE models as a user runs them (HF `generate`), against the dense model."""
