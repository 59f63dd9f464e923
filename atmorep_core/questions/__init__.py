"""The model's questions: masking strategies and plans, shared by training and inference."""
