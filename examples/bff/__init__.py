"""The example backend-for-frontend of the seed stack, with its static page."""
