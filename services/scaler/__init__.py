"""The scaler: deploys built SIGs on the runtime and keeps them at their desired shape."""
