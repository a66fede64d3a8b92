"""Examples of apps built on idp and idp-rp (the tests import them from here)."""
