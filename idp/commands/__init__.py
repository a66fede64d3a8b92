"""The ``idp`` subcommands, one module per noun; ``idp/cli.py`` builds the parser."""
