"""The products, one module per question: forecast, interpolation, correction, downscaling,
counterfactuals; each asks the engine and returns a product."""
