"""The example API of the seed stack."""
