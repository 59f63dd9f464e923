"""The engine: cut a domain into tiles, ask the trained model, stitch its answers."""
