"""Local broker simulation: wire encoders, a synthetic universe and a market model."""
