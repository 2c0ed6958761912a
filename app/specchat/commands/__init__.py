"""One module per `specchat` subcommand; each exposes register(subparsers)."""
