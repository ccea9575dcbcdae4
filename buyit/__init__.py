"""BuyIt: command line, settings and the process supervisor that runs the stack."""
